"""A :class:`~x86vm.cpu.state.RegisterState` to and from KVM's register structures.

``kvm_regs`` carries the general registers, RIP and RFLAGS; ``kvm_sregs`` the segment
registers with their hidden parts, GDTR/IDTR, CR0/2/3/4/8 and EFER; ``kvm_debugregs`` DR0-3,
DR6, DR7; ``kvm_vcpu_events`` an exception or interrupt being delivered and the interrupt
shadow (api.rst §4.11-4.14, §4.31-4.32). The MSRs of :data:`~x86vm.cpu.state.STATE_MSRS` go
through ``KVM_GET/SET_MSRS`` (in :mod:`vcpu`). The conversions here are pure functions, so
they are tested without /dev/kvm.
"""

from __future__ import annotations

from x86vm.cpu.state import (
    GPR_NAMES,
    RFLAGS_FIXED,
    PendingEvent,
    RegisterState,
    Segment,
    TableRegister,
)
from x86vm.machine.backend import DebugControl, debug_slots
from x86vm.machine.kvm import abi

NMI_VECTOR = 2


def segment_from_kvm(seg: abi.KvmSegment) -> Segment:
    return Segment(selector=seg.selector, base=seg.base, limit=seg.limit, type=seg.type,
                   s=seg.s, dpl=seg.dpl, present=seg.present, db=seg.db, l=seg.l, g=seg.g,
                   avl=seg.avl, unusable=seg.unusable)


def load_segment(dst: abi.KvmSegment, seg: Segment) -> None:
    dst.base, dst.limit, dst.selector, dst.type = seg.base, seg.limit, seg.selector, seg.type
    dst.present, dst.dpl, dst.db, dst.s = seg.present, seg.dpl, seg.db, seg.s
    dst.l, dst.g, dst.avl, dst.unusable = seg.l, seg.g, seg.avl, seg.unusable


def state_from_kvm(regs: abi.KvmRegs, sregs: abi.KvmSregs, debugregs: abi.KvmDebugregs,
                   events: abi.KvmVcpuEvents, msrs: dict[int, int]) -> RegisterState:
    """The snapshot the four structures (and the MSRs read) describe."""
    return RegisterState(
        rip=regs.rip,
        gprs={name: getattr(regs, name) for name in GPR_NAMES},
        rflags=regs.rflags,
        **{name: segment_from_kvm(getattr(sregs, name)) for name in abi.SEGMENT_NAMES},
        gdt=TableRegister(sregs.gdt.base, sregs.gdt.limit),
        idt=TableRegister(sregs.idt.base, sregs.idt.limit),
        cr0=sregs.cr0, cr2=sregs.cr2, cr3=sregs.cr3, cr4=sregs.cr4, cr8=sregs.cr8,
        efer=sregs.efer,
        dr=(*debugregs.db, debugregs.dr6, debugregs.dr7),
        msrs=dict(msrs),
        pending=pending_from_events(events),
        interrupt_shadow=bool(events.interrupt.shadow),
    )


def pending_from_events(events: abi.KvmVcpuEvents) -> PendingEvent | None:
    """The event KVM is delivering: an exception first (it would be delivered first), then
    an external or software interrupt, then an NMI."""
    exc = events.exception
    if exc.injected or exc.pending:
        return PendingEvent(exc.nr, "exception",
                            exc.error_code if exc.has_error_code else None)
    if events.interrupt.injected:
        return PendingEvent(events.interrupt.nr,
                            "soft" if events.interrupt.soft else "interrupt")
    if events.nmi.injected:
        return PendingEvent(NMI_VECTOR, "nmi")
    return None


def load_regs(regs: abi.KvmRegs, state: RegisterState) -> None:
    unknown = set(state.gprs) - set(GPR_NAMES)
    if unknown:
        raise ValueError(f"unknown register names in register state: {sorted(unknown)}")
    for name in GPR_NAMES:
        setattr(regs, name, state.gprs.get(name, 0))
    regs.rip = state.rip
    regs.rflags = state.rflags | RFLAGS_FIXED


def load_sregs(sregs: abi.KvmSregs, state: RegisterState) -> None:
    """Everything but ``apic_base`` (KVM's choice at vCPU creation, or the APIC base MSR of
    ``state.msrs``). The interrupt bitmap is cleared: a pending interrupt travels in the
    vCPU events instead (api.rst §4.14: the bitmap is for a userspace irqchip only)."""
    for name in abi.SEGMENT_NAMES:
        load_segment(getattr(sregs, name), getattr(state, name))
    sregs.gdt.base, sregs.gdt.limit = state.gdt.base, state.gdt.limit
    sregs.idt.base, sregs.idt.limit = state.idt.base, state.idt.limit
    sregs.cr0, sregs.cr2, sregs.cr3 = state.cr0, state.cr2, state.cr3
    sregs.cr4, sregs.cr8, sregs.efer = state.cr4, state.cr8, state.efer
    for i in range(len(sregs.interrupt_bitmap)):
        sregs.interrupt_bitmap[i] = 0


def load_debugregs(debugregs: abi.KvmDebugregs, state: RegisterState) -> None:
    if len(state.dr) != 6:
        raise ValueError(f"dr must be (DR0, DR1, DR2, DR3, DR6, DR7), not {state.dr!r}")
    for i in range(4):
        debugregs.db[i] = state.dr[i]
    debugregs.dr6, debugregs.dr7 = state.dr[4], state.dr[5]
    debugregs.flags = 0


def load_events(events: abi.KvmVcpuEvents, state: RegisterState) -> None:
    """Replace the delivery in progress and the interrupt shadow; NMI masking, SMM and the
    SIPI vector keep the values read from KVM (their VALID flags stay clear)."""
    exc, intr, nmi = events.exception, events.interrupt, events.nmi
    exc.injected = exc.pending = exc.has_error_code = 0
    exc.nr, exc.error_code = 0, 0
    intr.injected = intr.soft = intr.nr = 0
    nmi.injected = 0
    events.exception_has_payload, events.exception_payload = 0, 0
    event = state.pending
    if event is not None:
        if event.kind == "exception":
            exc.injected, exc.nr = 1, event.vector
            if event.error_code is not None:
                exc.has_error_code, exc.error_code = 1, event.error_code
        elif event.kind in ("interrupt", "soft"):
            intr.injected, intr.nr, intr.soft = 1, event.vector, int(event.kind == "soft")
        elif event.kind == "nmi":
            nmi.injected = 1
        else:
            raise ValueError(f"unknown pending event kind {event.kind!r}")
    # RegisterState keeps one bit: both KVM kinds block interrupts for one instruction
    # (SDM Vol. 3A §25.4.2 "Interruptibility State"); STI is the one a guest makes often.
    # A shadow KVM reported keeps its kind (MOV SS also holds off debug traps).
    intr.shadow = (intr.shadow or abi.KVM_X86_SHADOW_INT_STI) if state.interrupt_shadow else 0
    events.flags = abi.KVM_VCPUEVENT_VALID_SHADOW


# DR7 (SDM Vol. 3B §18.2.4): L0-L3 at bits 0, 2, 4, 6; R/W0-3 at 16 + 4n, LEN0-3 at 18 + 4n.
DR7_RW = {"x": 0b00, "w": 0b01, "rw": 0b11}
DR7_LEN = {1: 0b00, 2: 0b01, 4: 0b11, 8: 0b10}
DR7_LE = 1 << 8  # "exact breakpoint" enable, recommended set (§18.2.4)


def guest_debug(control: DebugControl) -> tuple[int, tuple[int, ...]]:
    """The ``kvm_guest_debug`` for ``control``: its ``control`` flags and ``debugreg[0..7]``
    (DR0-DR3 = breakpoint then watchpoint addresses, DR7 = their enables)."""
    if control.unpatched_breakpoints:
        raise ValueError("KVM has no breakpoints beyond the debug registers: use int3")
    slots = debug_slots(control)
    flags = 0
    if control.single_step:
        flags |= abi.KVM_GUESTDBG_SINGLESTEP
    if control.software_breakpoints:
        flags |= abi.KVM_GUESTDBG_USE_SW_BP
    debugreg = [0] * 8
    if slots:
        flags |= abi.KVM_GUESTDBG_USE_HW_BP
        dr7 = DR7_LE
        for n, (address, length, kind) in enumerate(slots):
            debugreg[n] = address
            dr7 |= 1 << (2 * n) | DR7_RW[kind] << (16 + 4 * n) | DR7_LEN[length] << (18 + 4 * n)
        debugreg[7] = dr7
    if flags:
        flags |= abi.KVM_GUESTDBG_ENABLE
    return flags, tuple(debugreg)
