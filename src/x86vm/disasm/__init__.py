"""x86vm.disasm: objdump's listings of x86 code (see ARCHITECTURE.md and docs/disasm.md).

For scripts, ``x86vm.disasm.listing(path, **options)`` yields the listing as `Line` records
(address, bytes, text, section, symbol, relocations, source line): see `x86vm.disasm.api`.
(``x86vm.disasm.listing`` is also the module that lays listings out; calling it lists.)
"""

from __future__ import annotations

__all__ = ["Line", "Relocation", "SourceLine", "listing"]


def __getattr__(name: str):
    """Load on first use: importing the package stays cheap for the formatters' users."""
    import importlib

    if name in ("Line", "Relocation", "SourceLine"):
        return getattr(importlib.import_module("x86vm.disasm.api"), name)
    if name == "listing":
        return importlib.import_module("x86vm.disasm.listing")
    raise AttributeError(f"module 'x86vm.disasm' has no attribute {name!r}")
