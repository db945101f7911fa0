"""x86vm.gdb (see ARCHITECTURE.md)."""
