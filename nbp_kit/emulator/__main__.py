"""``python -m nbp_kit.emulator``: run the emulator in the foreground."""

from __future__ import annotations

import sys

from .server import main

sys.exit(main())
