"""KVM backend: /dev/kvm ioctls from Python (ctypes, no C extension)."""
