"""x86vm: a hackable x86 virtual machine written in Python.

Layers (bottom to top, see ARCHITECTURE.md): isa, disasm, cpu, machine, devices, trace/gdb, cli.
"""

__version__ = "0.1.0"
