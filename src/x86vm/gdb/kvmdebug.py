"""What this host's KVM delivers to a debugger, probed once: data breakpoints.

``KVM_SET_GUEST_DEBUG`` with a DR7 write watchpoint must stop a guest's store with a debug
exit (SDM Vol. 3B §18.2.4). The software KVM of the machine these tests run on never does
(docs/vmm.md); the gdb stub then watches writes by single-stepping instead.
"""

from __future__ import annotations

import functools

from x86vm.machine.backend import DebugControl

# 7c00: movw $1, 0x500; out %al, $0x80; hlt   (real mode)
_STORE = bytes.fromhex("c70600050100" "e680" "f4")


@functools.cache
def data_breakpoints_delivered(kvm_path: str = "/dev/kvm") -> bool:
    """Whether a write watchpoint on 0x500 stops the real-mode store to it (a DebugStop
    before the ``out``)."""
    from x86vm.machine.boot.state import real_mode
    from x86vm.machine.exits import DebugStop
    from x86vm.machine.vm import Machine

    try:
        machine = Machine(memory_size=1 << 20, backend="kvm", kvm_path=kvm_path)
    except Exception:  # noqa: BLE001 - no KVM here: nothing is delivered
        return False
    try:
        machine.memory.write(0x7C00, _STORE)
        backend = machine.backend
        backend.set_state(real_mode(0, 0x7C00))
        backend.set_debug(DebugControl(watchpoints=((0x500, 2, "w"),)))
        with backend.running():
            return isinstance(backend.run(), DebugStop)
    finally:
        machine.close()
