"""The emu backend: the pure-Python CPU (:mod:`x86vm.cpu`) behind the Backend protocol."""

from x86vm.machine.emu.backend import EmuBackend

__all__ = ["EmuBackend"]
