"""The built-in catalog: one module per family, each registering its ops on import."""

from __future__ import annotations

import importlib

FAMILIES = ("blur", "noise", "compression", "sampling", "color", "mixing", "learned", "albu", "weather", "realistic")

for _family in FAMILIES:
    try:
        importlib.import_module(f"degrade.ops.{_family}")
    except ModuleNotFoundError as _exc:  # a family not written yet
        if _exc.name != f"degrade.ops.{_family}":
            raise
