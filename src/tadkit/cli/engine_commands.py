"""``tadkit train`` and ``tadkit predict``: thin wrappers around :mod:`tadkit.engine`."""
from __future__ import annotations

ENGINE_COMMANDS: dict = {}
