"""x86vm.trace (see ARCHITECTURE.md)."""
