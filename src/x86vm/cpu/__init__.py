"""x86vm.cpu (see ARCHITECTURE.md)."""
