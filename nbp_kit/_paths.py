"""Paths defined once. ``NBP_KIT_DATA`` and ``NBP_KIT_RUNS`` override the defaults."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("NBP_KIT_DATA", PROJECT_DIR / "data"))
PROFILES_DIR = DATA_DIR / "profiles"
REFERENCE_DIR = DATA_DIR / "reference"
RUNS_DIR = Path(os.environ.get("NBP_KIT_RUNS", DATA_DIR / "runs"))
NOTEBOOKS_DIR = PROJECT_DIR / "notebooks"
