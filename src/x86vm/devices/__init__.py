"""x86vm.devices (see ARCHITECTURE.md)."""
