"""Guests bundled with x86vm: ``hello.bin``, the boot sector ``x86vm run`` boots when given no
image (source: ``hello.S`` next to it)."""

from __future__ import annotations

from importlib import resources


def bundled_hello() -> bytes:
    """The bundled greeting guest: a flat real-mode boot sector (load at 0x7C00)."""
    return resources.files(__name__).joinpath("hello.bin").read_bytes()
