"""The machine's one error type."""

from __future__ import annotations


class MachineError(RuntimeError):
    """The machine cannot be set up or run (backend unavailable, bad memory size…)."""
