"""x86vm.disasm (see ARCHITECTURE.md)."""
