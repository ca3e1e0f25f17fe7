"""The embedded emulator: a wire-faithful, calibrated local Nano Banana Pro API.

>>> from nbp_kit import emulator
>>> with emulator.start(profile="instant", time_scale=0.02) as emu:
...     emu.base_url.startswith("http://")
True
"""

from __future__ import annotations

from ..profiles import load_profile, profile_names
from .faults import FAULT_KINDS
from .model import LatencyModel
from .network import NetworkProfile, load_network, network_names
from .server import Emulator, add_arguments, main, run_from_args, start

__all__ = [
    "FAULT_KINDS",
    "Emulator",
    "LatencyModel",
    "NetworkProfile",
    "add_arguments",
    "load_network",
    "load_profile",
    "main",
    "network_names",
    "profile_names",
    "run_from_args",
    "start",
]
