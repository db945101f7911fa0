"""The vCPU: architectural state and the dispatcher that runs translated blocks.

All state lives in the :class:`Cpu` object (no module-level mutable state), so several
vCPUs can exist. Registers are a list of 16 unsigned 64-bit ints; RFLAGS is ``fl`` plus the
lazy arithmetic record ``cc`` (see :mod:`x86vm.cpu.flags`); each segment register is a
:class:`~x86vm.cpu.state.Segment` (selector and hidden descriptor cache) with its base
copied into ``sbase`` for the translated code.

:meth:`Cpu.run` executes blocks until an instruction needs the monitor (port I/O, MMIO, HLT,
shutdown) or a budget of instructions is spent, and says why in ``Cpu.stop_reason``.
"""

from __future__ import annotations

from x86vm.cpu import flags as F
from x86vm.cpu.cpuid import MAX_LINEAR_BITS, VENDOR
from x86vm.cpu.debug import DebugMixin
from x86vm.cpu.errors import (
    CONTRIBUTORY,
    DF,
    FAULT_CLASS,
    PF,
    CpuFault,
    NeedsRead,
    TripleFault,
)
from x86vm.cpu.interrupts import InterruptMixin
from x86vm.cpu.mmu import MmuMixin, Ram
from x86vm.cpu.segcheck import segment_check_mask
from x86vm.cpu.state import (
    CR0_ET,
    CR0_PE,
    CR0_PG,
    EFER_LMA,
    EFER_LME,
    GPR_NAMES,
    MSR_IA32_APIC_BASE,
    MSR_IA32_MISC_ENABLE,
    MSR_IA32_PAT,
    RFLAGS_IF,
    RFLAGS_RF,
    RFLAGS_TF,
    RFLAGS_VM,
    SEGMENT_NAMES,
    STATE_MSRS,
    FpuState,
    PendingEvent,
    RegisterState,
    Segment,
    TableRegister,
)
from x86vm.cpu.system import check_io
from x86vm.cpu.translate import Translator
from x86vm.cpu.x87 import X87

ES, CS, SS, DS, FS, GS = range(6)
M64 = 0xFFFFFFFFFFFFFFFF
DEFAULT_MSRS = {MSR_IA32_APIC_BASE: 0xFEE00900, MSR_IA32_PAT: 0x0007040600070406,
                MSR_IA32_MISC_ENABLE: 1}
IRQ_POLL_BLOCKS = 1024  # poll the interrupt controller at least this often (in blocks)


class Cpu(MmuMixin, InterruptMixin, DebugMixin):
    """One x86-64 vCPU over guest RAM ``ram`` (a :class:`~x86vm.cpu.mmu.Ram`)."""

    vendor: bytes = VENDOR  # CPUID leaf 0; AMD's also selects AMD's SYSCALL (cpu/system.py)
    # the model's linear-address width: 57 with LA57 (CPUID, CR4.LA57, the canonical checks
    # of stored addresses: cpu/paging.py), 48 for a CPU with 4-level paging only
    max_linear_bits: int = MAX_LINEAR_BITS

    def __init__(self, ram: Ram) -> None:
        self.r = [0] * 16
        self.rip = 0xFFF0
        self.fl = 0x2
        self.cc: tuple | None = None
        self.seg = [Segment() for _ in range(6)]
        self.sbase = [0] * 6
        self.tr = Segment(type=0xB, s=0)
        self.ldtr = Segment(type=0x2, s=0)
        self.gdtr = TableRegister()
        self.idtr = TableRegister()
        self.cr0 = CR0_ET
        self.cr2 = self.cr3 = self.cr4 = self.cr8 = 0
        self.efer = 0
        self.dr = [0, 0, 0, 0, 0xFFFF0FF0, 0x400]
        self.msrs: dict[int, int] = dict(DEFAULT_MSRS)
        self.seg_checks = 0        # segments whose accesses are checked (segcheck.py)
        self.x87 = X87()           # x87 FPU and MMX registers (cpu/x87.py; FNINIT state)
        self.xmm = [0] * 16        # XMM0-15 as 128-bit ints (SDM Vol. 1 §10.2)
        self.mxcsr = 0x1F80        # SSE control/status, power-up value (SDM Vol. 1 §10.2.3)
        self.xcr0 = 1              # XSAVE feature mask: x87 only after reset (cpu/xsave.py)
        self.pkru = 0              # protection keys for user pages (RDPKRU/WRPKRU, mmu.py)
        self.cpl = 0
        self.code_bits = 16
        self.stack_bits = 16
        self.icount = 0            # instructions retired
        self.tsc_offset = 0
        self.idle_ns = 0           # guest time skipped while halted (waiting for a timer)
        self.ns_per_insn = 50      # guest time: 20 MHz of retired instructions
        self.shadow = False        # STI / MOV SS interrupt shadow for the next boundary
        self.movss_shadow = False  # MOV SS / POP SS: debug traps wait one instruction too
        self.tf_armed = False      # the instruction running alone under RFLAGS.TF traps after
        self.halted = False
        self.implicit_access = False
        self.irq_check = True      # something may have made an interrupt pending
        self.attn = True           # the dispatcher must look at the flags above/below
        self.controller = None     # InterruptController (pending_vector/acknowledge)
        self.stop_reason: str | None = None
        self.stop_flag = False     # set from another thread: return soon
        self.ud_count = 0
        self.ud_seen: dict[str, int] = {}
        self.pending_event: tuple | None = None   # (vector, error code) to deliver next
        self._init_debug()         # breakpoints, watchpoints, trace hooks (cpu/debug.py)
        self._init_mmu(ram)
        self._last_mode: tuple | None = None
        self.translator = Translator(self)
        self.on_code_write = self.translator.invalidate
        self.update_mode()

    # -- flags --------------------------------------------------------------------------

    def flags(self) -> int:
        """RFLAGS, with the lazy arithmetic flags computed."""
        cc = self.cc
        if cc is not None:
            self.fl = (self.fl & ~F.ARITH) | F.compute(cc)
            self.cc = None
        return self.fl

    def set_flags(self, value: int) -> None:
        self.cc = None
        self.fl = (value & 0x3F7FD7) | 0x2
        if value & RFLAGS_TF:
            self.attn = True

    # -- modes --------------------------------------------------------------------------

    def update_mode(self) -> None:
        """Recompute code/stack size and CPL after CS, SS, CR0, EFER or RFLAGS.VM change."""
        cs = self.seg[CS]
        if not self.cr0 & CR0_PE:
            self.code_bits = 32 if cs.db else 16
            self.stack_bits = 32 if self.seg[SS].db else 16
            cpl = 0
        elif self.fl & RFLAGS_VM:
            self.code_bits = self.stack_bits = 16
            cpl = 3
        else:
            if self.efer & EFER_LMA and cs.l:
                self.code_bits = self.stack_bits = 64
            else:
                self.code_bits = 32 if cs.db else 16
                self.stack_bits = 32 if self.seg[SS].db else 16
            cpl = cs.selector & 3
        if cpl != self.cpl:
            self.cpl = cpl
            self.flush_tlb()
        self.seg_checks = segment_check_mask(self)
        key = (self.mode_key, self.sbase[CS])
        if key != self._last_mode:   # the linear lookup holds blocks of one mode and CS base
            self._last_mode = key
            self.translator.mode_changed()

    @property
    def mode_key(self) -> tuple:
        return (self.code_bits, self.stack_bits, self.cpl, self.cr0 & CR0_PE, self.seg_checks)

    def set_cr0(self, value: int) -> None:
        old = self.cr0
        value |= CR0_ET
        if value & CR0_PG and not value & CR0_PE:
            raise CpuFault(13, 0)
        if (value ^ old) & CR0_PG and self.efer & EFER_LME:
            if value & CR0_PG:
                self.efer |= EFER_LMA
            else:
                self.efer &= ~EFER_LMA
        self.cr0 = value
        if self.trace_cr is not None:
            self.trace_cr("cr0", old, value)
        if (value ^ old) & 0xE0000001 | ((value ^ old) & (1 << 16)):
            self.flush_tlb()
            self.translator.flush_lookup()
        self.update_mode()

    def set_cr3(self, value: int) -> None:
        if self.trace_cr is not None:
            self.trace_cr("cr3", self.cr3, value)
        self.cr3 = value
        self.flush_tlb()
        self.translator.flush_lookup()

    def set_cr4(self, value: int) -> None:
        if self.trace_cr is not None:
            self.trace_cr("cr4", self.cr4, value)
        self.cr4 = value
        self.flush_tlb()
        self.translator.flush_lookup()

    def set_efer(self, value: int) -> None:
        value = (value & ~EFER_LMA) | (self.efer & EFER_LMA)
        if self.trace_cr is not None:
            self.trace_cr("efer", self.efer, value)
        self.efer = value
        self.flush_tlb()
        self.update_mode()

    def fpu_reset(self, init: bool = False) -> None:
        """The x87 and SSE state after RESET (``init=False``) or INIT: FNINIT with every data
        register cleared; RESET also clears XMM0-15 and sets MXCSR to 1F80H, INIT leaves them
        (SDM Vol. 1 §11.6.4: INIT does not change the SSE state)."""
        self.x87 = X87()
        if not init:
            self.xmm[:] = [0] * 16
            self.mxcsr = 0x1F80
            self.xcr0 = 1

    # -- time ---------------------------------------------------------------------------

    def clock_ns(self) -> int:
        """Guest time: retired instructions at the virtual frequency, plus halted time."""
        return self.icount * self.ns_per_insn + self.idle_ns

    def tsc(self) -> int:
        """TSC: the virtual clock in cycles of a 1 GHz time-stamp counter (1 per ns)."""
        return self.clock_ns() + self.tsc_offset

    # -- the dispatcher -------------------------------------------------------------------

    def run(self, budget: int) -> str:
        """Execute until something needs the monitor or ``budget`` instructions retired.

        Returns the reason: "budget", "io" (``pending`` or ``needs_read`` set), "halt",
        "shutdown", "stop" (``stop_flag``).
        """
        limit = self.icount + budget
        lookup = self.translator.lookup
        cached = self.translator.lcache.get
        sbase = self.sbase
        pending = self.pending
        poll = IRQ_POLL_BLOCKS
        if self.replay:
            r = self._resume_one()
            if r:
                return r
            if self.debugging and self.stop_after_io():
                return "debug"
        if self.debugging:
            return self._run_debug(limit)
        single = self.translator.single
        while True:
            if self.attn:
                if self.debugging:   # the guest armed DR7 in this run: the debug dispatcher
                    return "budget"
                r = self._attention()
                if r is None:
                    blk = lookup(sbase[1] + self.rip)
                elif r == "one":     # the instruction after STI / MOV SS, alone
                    blk = single(sbase[1] + self.rip)
                else:
                    return r
            else:
                blk = cached(sbase[1] + self.rip) or lookup(sbase[1] + self.rip)
            try:
                self.icount += blk(self)
            except CpuFault as exc:
                self.icount += self.bi
                self.rip = blk.rips[self.bi]
                self.tf_armed = False      # a faulting instruction does not single-step
                if not self._fault(exc):
                    return "shutdown"
            except NeedsRead as exc:
                self.icount += self.bi
                self.rip = blk.rips[self.bi]
                self.needs_read = exc
                return "io"
            if pending:
                return "io"
            if self.icount >= limit:
                return "budget"
            poll -= 1
            if poll <= 0:
                poll = IRQ_POLL_BLOCKS
                self.irq_check = self.attn = True

    def _attention(self) -> str | None:
        """The slow part of a block boundary: stop requests, HLT, events, interrupts."""
        if self.stop_flag:
            return "stop"
        rf_one = False
        if self.fl & RFLAGS_RF:  # an IRET loaded it: it lasts one instruction (§17.3.1.1),
            if self.rf_armed or not self.guest_bps:   # which only guest breakpoints see
                self.fl &= ~RFLAGS_RF
                self.rf_armed = False
            else:
                self.rf_armed = rf_one = True
        if self.halted and not self._wake():
            return "halt"
        if self.pending_event is not None:
            self._deliver_pending()
        if self.tf_armed or self.guest_watch_hits:
            # single-step trap after the instruction (SDM Vol. 3B §17.3.1.4) and data
            # breakpoints (§17.3.1.2): one #DB, DR6 B0-B3 the slots hit
            if self.movss_shadow:    # after MOV SS / POP SS it waits for the next instruction
                self.movss_shadow = False   # (SDM Vol. 3A §6.8.3)
                if not self.tf_armed and not self.fl & RFLAGS_TF:
                    self.shadow = False      # that instruction runs alone, no interrupt
                    return "one"             # before it; the data breakpoint follows it
            else:
                self.dr[4] = (self.dr[4] & ~0xF) | self.guest_watch_hits \
                    | (0x4000 if self.tf_armed else 0)   # DR6.BS
                self.tf_armed = False
                self.guest_watch_hits = 0
                if not self._fault(CpuFault(1)):
                    return "shutdown"
        if self.fl & RFLAGS_TF:  # this instruction runs alone and traps after it
            self.tf_armed = True
            self.shadow = False
            return "one"
        if self.shadow:          # no interrupt before the instruction after STI / MOV SS
            self.shadow = self.movss_shadow = False
            self.irq_check = True
            return "one"
        if self.irq_check:
            self._check_interrupts()
        self.attn = bool(self.halted or self.irq_check or self.stop_flag or self.shadow
                         or self.tf_armed or self.fl & (RFLAGS_TF | RFLAGS_RF))
        return "one" if rf_one and self.fl & RFLAGS_RF else None

    def _resume_one(self) -> str | None:
        """Run the one instruction a completed read stopped, with the value replayed."""
        la = self.sbase[1] + self.rip
        blk = self.translator.single(la)
        self.replay_pos = 0
        record = self.trace_insn
        if record is not None:   # instruction tracing: nothing is written yet
            before, flags_before = self.r[:], self.flags()
        self.watch_reads_pass = True
        try:
            self.icount += blk(self)
        except CpuFault as exc:
            self.rip = blk.rips[0]
            self.replay.clear()
            if not self._fault(exc):
                return "shutdown"
            return None
        except NeedsRead as exc:   # a further read in the same instruction
            self.rip = blk.rips[0]
            self.needs_read = exc
            return "io"
        finally:
            self.watch_reads_pass = False
        if record is not None:
            self._record_insn(record, blk, la, before, flags_before)
        self.replay.clear()
        if self.pending:
            return "io"
        return None

    def _fault(self, exc: CpuFault) -> bool:
        """Deliver ``exc``; False when it ends in a triple fault."""
        if self.trace_exception is not None:
            self.trace_exception(exc.vector, exc.error_code, self.rip)
        if exc.vector in FAULT_CLASS:
            self.fl |= RFLAGS_RF     # pushed with the flags; delivery clears it again
        try:
            self.deliver(exc.vector, exc.error_code, soft=False)
            return True
        except CpuFault as second:
            first_contrib = exc.vector in CONTRIBUTORY
            if exc.vector == DF:
                self.stop_reason = "triple fault"
                return False
            if (first_contrib and second.vector in CONTRIBUTORY) or (
                    exc.vector == PF and (second.vector in CONTRIBUTORY or second.vector == PF)):
                try:
                    self.deliver(DF, 0, soft=False)
                    return True
                except (CpuFault, TripleFault):
                    self.stop_reason = "triple fault"
                    return False
            return self._fault(second)
        except TripleFault:
            self.stop_reason = "triple fault"
            return False

    def _deliver_pending(self) -> None:
        vector, code = self.pending_event
        self.pending_event = None
        self._fault(CpuFault(vector, code))

    def _check_interrupts(self) -> None:
        ctl = self.controller
        self.irq_check = False
        if ctl is None or self.deliver_nmi() or not self.fl & RFLAGS_IF:
            return
        if ctl.pending_vector() is None:
            return
        vector = ctl.acknowledge()
        if vector is None:
            return
        if self.trace_irq is not None:
            self.trace_irq(vector)
        self.halted = False
        if not self._fault_external(vector):
            self.stop_flag = self.attn = True
            self.stop_reason = "triple fault"

    def _fault_external(self, vector: int) -> bool:
        try:
            self.deliver(vector, None, soft=False, external=True)
            return True
        except CpuFault as exc:
            return self._fault(exc)

    def _wake(self) -> bool:
        """A halted CPU wakes for an interrupt it can take."""
        ctl = self.controller
        if ctl is not None and (self.nmi_ready() or self.fl & RFLAGS_IF
                                and ctl.pending_vector() is not None):
            self.halted = False
            self.irq_check = self.attn = True
            return True
        return False

    def check_io(self, port: int, size: int) -> None:
        check_io(self, port, size)

    # -- #UD accounting -------------------------------------------------------------------

    def undefined(self, name: str) -> CpuFault:
        self.ud_count += 1
        self.ud_seen[name] = self.ud_seen.get(name, 0) + 1
        return CpuFault(6, None, f"#UD: {name}")

    # -- RegisterState conversion ------------------------------------------------------------

    def get_state(self) -> RegisterState:
        msrs = {m: self.msrs.get(m, 0) for m in STATE_MSRS}
        msrs[0x10] = self.tsc()
        pending = None
        if self.pending_event is not None:
            pending = PendingEvent(self.pending_event[0], "exception", self.pending_event[1])
        return RegisterState(
            rip=self.rip, gprs=dict(zip(GPR_NAMES, self.r, strict=True)), rflags=self.flags(),
            cs=self.seg[CS], ds=self.seg[DS], es=self.seg[ES], fs=self.seg[FS],
            gs=self.seg[GS], ss=self.seg[SS], tr=self.tr, ldt=self.ldtr, gdt=self.gdtr,
            idt=self.idtr, cr0=self.cr0, cr2=self.cr2, cr3=self.cr3, cr4=self.cr4,
            cr8=self.cr8, efer=self.efer, dr=tuple(self.dr), msrs=msrs, pending=pending,
            interrupt_shadow=self.shadow, fpu=self._fpu_state())

    def _fpu_state(self) -> FpuState:
        x = self.x87
        return FpuState(fcw=x.cw, fsw=x.status_word, ftw=x.tag_word, fop=x.fop, fip=x.fip,
                        fcs=x.fcs, fdp=x.fdp, fds=x.fds, st=tuple(x.st(i) for i in range(8)),
                        xmm=tuple(self.xmm), mxcsr=self.mxcsr)

    def _set_fpu_state(self, f: FpuState) -> None:
        x = self.x87
        x.cw, x.status_word, x.fop = f.fcw & 0xFFFF, f.fsw & 0xFFFF, f.fop & 0x7FF
        x.fip, x.fcs, x.fdp, x.fds = f.fip, f.fcs & 0xFFFF, f.fdp, f.fds & 0xFFFF
        x.tag_word = f.ftw
        for i, v in enumerate(f.st[:8]):
            x.regs[(x.top + i) & 7] = v & ((1 << 80) - 1)
        self.xmm[:len(f.xmm[:16])] = [v & ((1 << 128) - 1) for v in f.xmm[:16]]
        self.mxcsr = f.mxcsr & 0xFFFF

    def set_state(self, s: RegisterState) -> None:
        self.r[:] = [s.gprs.get(n, 0) & M64 for n in GPR_NAMES]
        self.rip = s.rip
        self.set_flags(s.rflags)
        for i, name in enumerate(SEGMENT_NAMES):
            seg = getattr(s, name)
            self.seg[i] = seg
            self.sbase[i] = seg.base
        self.tr, self.ldtr, self.gdtr, self.idtr = s.tr, s.ldt, s.gdt, s.idt
        self.cr0 = s.cr0 | CR0_ET
        self.cr2, self.cr3, self.cr4, self.cr8 = s.cr2, s.cr3, s.cr4, s.cr8
        self.efer = s.efer
        self.dr = list(s.dr)
        for m, v in s.msrs.items():
            if m == 0x10:
                self.tsc_offset = v - self.clock_ns()
            else:
                self.msrs[m] = v
        self.shadow = s.interrupt_shadow
        self.movss_shadow = False
        if s.fpu is not None:
            self._set_fpu_state(s.fpu)
        self.pending_event = None
        if s.pending is not None and s.pending.kind == "exception":
            self.pending_event = (s.pending.vector, s.pending.error_code)
        self.halted = False
        self.attn = True
        self.cpl = -1
        self.flush_tlb()
        self.translator.flush_lookup()
        self.update_mode()
        self.irq_check = True
