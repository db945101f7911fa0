"""The debugger's view of a KVM vCPU until the KVM backend implements ``get_state``/
``set_state``/``set_debug`` itself: registers through ``KVM_GET_REGS``/``KVM_SET_REGS``/
``KVM_GET_SREGS``, and ``KVM_SET_GUEST_DEBUG`` (api.rst §4.59) for single-step, software
breakpoints (``int3`` exits to userspace instead of reaching the guest) and the four
hardware breakpoint/watchpoint slots (DR0-DR3, DR7 as SDM Vol. 3B §18.2.4 lays it out).
"""

from __future__ import annotations

import ctypes
import fcntl
import functools

from x86vm.cpu.state import GPR_NAMES, RegisterState
from x86vm.machine.backend import DebugControl
from x86vm.trace.oops import vcpu_state

KVM_GUESTDBG_ENABLE = 0x00000001
KVM_GUESTDBG_SINGLESTEP = 0x00000002
KVM_GUESTDBG_USE_SW_BP = 0x00010000
KVM_GUESTDBG_USE_HW_BP = 0x00020000
HW_SLOTS = 4
DR7_RW = {"x": 0b00, "w": 0b01, "rw": 0b11}  # R/W field: execute, write, read or write
DR7_LEN = {1: 0b00, 2: 0b01, 8: 0b10, 4: 0b11}


class KvmGuestDebug(ctypes.Structure):
    """``struct kvm_guest_debug`` with the x86 ``kvm_guest_debug_arch`` (debugreg[8])."""

    _fields_ = [("control", ctypes.c_uint32), ("pad", ctypes.c_uint32),
                ("debugreg", ctypes.c_uint64 * 8)]


KVM_SET_GUEST_DEBUG = (1 << 30) | (ctypes.sizeof(KvmGuestDebug) << 16) | (0xAE << 8) | 0x9B


class DebugSlotsFull(ValueError):
    """More hardware breakpoints and watchpoints than DR0-DR3."""


def dr7_for(slots: list[tuple[int, int, str]]) -> tuple[list[int], int]:
    """DR0-DR3 and DR7 for ``slots`` of (address, length, kind "x"/"w"/"rw")."""
    if len(slots) > HW_SLOTS:
        raise DebugSlotsFull(f"{len(slots)} hardware breakpoints/watchpoints, at most "
                             f"{HW_SLOTS}")
    addresses, dr7 = [0] * HW_SLOTS, 0
    for i, (address, length, kind) in enumerate(slots):
        length = 1 if kind == "x" else length
        if length not in DR7_LEN:
            raise ValueError(f"watchpoint length {length} (1, 2, 4 or 8)")
        addresses[i] = address
        dr7 |= 0b10 << (2 * i)  # Gn: global enable
        dr7 |= (DR7_RW[kind] | DR7_LEN[length] << 2) << (16 + 4 * i)
    return addresses, dr7


@functools.cache
def data_breakpoints_delivered(kvm_path: str = "/dev/kvm") -> bool:
    """Whether this host's KVM stops on a DR7 data breakpoint set with
    ``KVM_SET_GUEST_DEBUG`` (this machine's software KVM does not): a real-mode
    ``movw $1, 0x500`` under a write watchpoint must end in a debug exit, not the ``out``."""
    from x86vm.machine.boot.state import real_mode
    from x86vm.machine.exits import DebugStop
    from x86vm.machine.vm import Machine

    try:
        machine = Machine(memory_size=1 << 20, backend="kvm", kvm_path=kvm_path)
    except Exception:  # noqa: BLE001 - no KVM, no data breakpoints
        return False
    try:
        machine.memory.write(0x7C00, bytes.fromhex("c70600050100" "e680" "f4"))
        backend = machine.backend
        backend.set_entry_state(real_mode(0, 0x7C00))
        KvmDebugTarget(backend, probe=False).set_debug(DebugControl(watchpoints=((0x500, 2,
                                                                                 "w"),)))
        with backend.running():
            return isinstance(backend.run(), DebugStop)
    finally:
        machine.close()


class KvmDebugTarget:
    """get_state/set_state/set_debug on a :class:`KvmBackend`'s vCPU; ``data_breakpoints``
    says whether watchpoints in DR0-DR3 are delivered on this host."""

    def __init__(self, backend: object, probe: bool = True) -> None:
        self.backend = backend
        self.vcpu = backend.vcpu  # type: ignore[attr-defined]
        self.software_breakpoints = False
        self.data_breakpoints = data_breakpoints_delivered() if probe else True

    def get_state(self) -> RegisterState:
        state = vcpu_state(self.backend)
        assert state is not None
        return state

    def set_state(self, state: RegisterState) -> None:
        """General registers, RIP and RFLAGS (what gdb's G/P packets change)."""
        regs = self.vcpu.get_regs()
        for name in GPR_NAMES:
            setattr(regs, name, state.gpr(name))
        regs.rip, regs.rflags = state.rip, state.rflags | 0x2
        self.vcpu.set_regs(regs)

    def set_debug(self, control: DebugControl) -> None:
        slots = [(a, 1, "x") for a in control.breakpoints] + list(control.watchpoints)
        addresses, dr7 = dr7_for(slots)
        debug = KvmGuestDebug()
        flags = 0
        if control.single_step:
            flags |= KVM_GUESTDBG_SINGLESTEP
        if slots:
            flags |= KVM_GUESTDBG_USE_HW_BP
        if self.software_breakpoints:
            flags |= KVM_GUESTDBG_USE_SW_BP
        if flags:
            flags |= KVM_GUESTDBG_ENABLE
        debug.control = flags
        for i, address in enumerate(addresses):
            debug.debugreg[i] = address
        debug.debugreg[7] = dr7
        fcntl.ioctl(self.vcpu.fd, KVM_SET_GUEST_DEBUG, debug)


def debug_target(backend: object) -> object:
    """The backend itself if it implements the debugger's methods, else a KVM adapter."""
    try:
        backend.get_state()  # type: ignore[attr-defined]
        backend.set_debug(DebugControl())  # type: ignore[attr-defined]
        return backend
    except (AttributeError, NotImplementedError):
        pass
    if getattr(backend, "vcpu", None) is None:
        raise ValueError(f"backend {getattr(backend, 'name', backend)!r} cannot be debugged")
    return KvmDebugTarget(backend)


__all__ = ["KvmDebugTarget", "debug_target", "dr7_for", "DebugSlotsFull"]
