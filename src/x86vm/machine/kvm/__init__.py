"""KVM backend: /dev/kvm ioctls from Python (ctypes, no C extension).

:mod:`abi` mirrors linux/kvm.h, :mod:`system` wraps the /dev/kvm and VM fds, :mod:`vcpu`
turns ``kvm_run`` into exit objects, :mod:`backend` is what the run loop drives.
"""

from x86vm.machine.kvm.backend import KvmBackend
from x86vm.machine.kvm.system import KvmError

__all__ = ["KvmBackend", "KvmError"]
