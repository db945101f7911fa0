"""x86vm.isa (see ARCHITECTURE.md)."""
