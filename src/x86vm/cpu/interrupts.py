"""Segments, descriptors, far transfers and interrupt/exception delivery.

Descriptors (SDM Vol. 3A §3.4.5, §3.5), segment loads with their checks (§5.5-§5.8 as far as
implemented: null selectors, present bit, type, DPL/RPL/CPL for data and stack segments),
delivery through the real-mode IVT (§20.1.4) and the protected/long-mode IDT (§6.12, §6.14)
with interrupt and trap gates, stack switches through the TSS (RSP0/SS0, IST), and IRET.
"""

from __future__ import annotations

import functools
from dataclasses import replace

from x86vm.cpu.errors import GP, NP, SS, TS, CpuFault
from x86vm.cpu.segcheck import segment_check_bit
from x86vm.cpu.state import (
    CR0_PE,
    EFER_LMA,
    RFLAGS_AC,
    RFLAGS_IF,
    RFLAGS_NT,
    RFLAGS_RF,
    RFLAGS_TF,
    RFLAGS_VM,
    Segment,
)

_ES, _CS, _SS, _DS, _FS, _GS = range(6)
M64 = 0xFFFFFFFFFFFFFFFF


@functools.lru_cache(maxsize=4096)
def parse_descriptor(raw: int, selector: int) -> Segment:
    """A Segment from an 8-byte descriptor (its hidden-cache form, limit scaled by G).
    A pure function of its arguments, memoised: the result is immutable."""
    limit = (raw & 0xFFFF) | ((raw >> 32) & 0xF0000)
    base = ((raw >> 16) & 0xFFFFFF) | (((raw >> 56) & 0xFF) << 24)
    access = (raw >> 40) & 0xFF
    flags = (raw >> 52) & 0xF
    g = (flags >> 3) & 1
    if g:
        limit = (limit << 12) | 0xFFF
    return Segment(selector=selector, base=base, limit=limit, type=access & 0xF,
                   s=(access >> 4) & 1, dpl=(access >> 5) & 3, present=access >> 7,
                   avl=flags & 1, l=(flags >> 1) & 1, db=(flags >> 2) & 1, g=g)


def null_segment(selector: int) -> Segment:
    """The hidden cache after a null selector is loaded: unusable (SDM Vol. 3A §3.4.2)."""
    return Segment(selector, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1)


class InterruptMixin:
    """Segment and interrupt machinery of :class:`x86vm.cpu.core.Cpu`."""

    # -- descriptors --------------------------------------------------------------------

    def read_descriptor(self, selector: int, vector: int = GP) -> tuple[int, int]:
        """(raw 8-byte descriptor, its linear address) for a selector, or #GP(sel)."""
        index = selector & ~7
        if selector & 4:
            base, limit = self.ldtr.base, self.ldtr.limit
        else:
            base, limit = self.gdtr.base, self.gdtr.limit
        if index + 7 > limit:
            raise CpuFault(vector, selector & 0xFFFC)
        la = base + index
        return self.read_sys(la, 8), la

    def set_segment(self, index: int, seg: Segment) -> None:
        """Load a segment register; the mode (sizes, CPL, which segments need access checks)
        is recomputed only if the load can change it: always for CS, for SS when its size
        or check bit changes, for a data segment when its check bit does."""
        old_db = self.seg[index].db
        self.seg[index] = seg
        self.sbase[index] = seg.base
        if index == _CS or (index == _SS and seg.db != old_db) or \
                (self.seg_checks ^ segment_check_bit(self, index, seg)) >> index & 1:
            self.update_mode()

    def load_segment(self, index: int, selector: int) -> None:
        """MOV/POP to a segment register (not CS), with the protected-mode checks."""
        selector &= 0xFFFF
        if not self.cr0 & CR0_PE or self.fl & RFLAGS_VM:
            old = self.seg[index]
            self.set_segment(index, Segment(selector, selector << 4, old.limit, old.type,
                                            old.s, old.dpl if not self.fl & RFLAGS_VM else 3,
                                            1, old.db, 0, old.g))
            return
        rpl = selector & 3
        if selector & ~3 == 0:
            if index == _SS and not (self.code_bits == 64 and rpl == self.cpl):
                raise CpuFault(GP, 0)
            self.set_segment(index, null_segment(selector))
            return
        raw, la = self.read_descriptor(selector)
        seg = parse_descriptor(raw, selector)
        if index == _SS:
            if rpl != self.cpl or seg.dpl != self.cpl or not seg.s or seg.type & 0xA != 0x2:
                raise CpuFault(GP, selector & 0xFFFC)
            if not seg.present:
                raise CpuFault(SS, selector & 0xFFFC)
        else:
            if not seg.s or (seg.type & 0xA) == 0x8:   # system, or execute-only code
                raise CpuFault(GP, selector & 0xFFFC)
            conforming_code = seg.type & 0xC == 0xC
            if not conforming_code and (rpl > seg.dpl or self.cpl > seg.dpl):
                raise CpuFault(GP, selector & 0xFFFC)
            if not seg.present:
                raise CpuFault(NP, selector & 0xFFFC)
        self._set_accessed(la, raw)
        self.set_segment(index, seg)

    def _set_accessed(self, la: int, raw: int) -> None:
        if not raw & (1 << 40):
            self.write_sys(la + 5, 1, ((raw >> 40) & 0xFF) | 1)

    def code_segment(self, selector: int) -> Segment:
        """The CS to load for a far jump/call/return to ``selector`` (same-privilege
        checks: code type, present, DPL by conformity)."""
        selector &= 0xFFFF
        if not self.cr0 & CR0_PE or self.fl & RFLAGS_VM:
            old = self.seg[_CS]
            return Segment(selector, selector << 4, 0xFFFF if self.fl & RFLAGS_VM else old.limit,
                           0xB, 1, 3 if self.fl & RFLAGS_VM else 0, 1, 0, 0, 0)
        if selector & ~3 == 0:
            raise CpuFault(GP, 0)
        raw, la = self.read_descriptor(selector)
        seg = parse_descriptor(raw, selector)
        if not seg.s or not seg.type & 0x8:
            raise CpuFault(GP, selector & 0xFFFC)
        if not seg.present:
            raise CpuFault(NP, selector & 0xFFFC)
        self._set_accessed(la, raw)
        return seg

    def load_cs(self, seg: Segment, cpl: int | None = None) -> None:
        if cpl is not None:
            seg = Segment(seg.selector & ~3 | cpl, seg.base, seg.limit, seg.type, seg.s,
                          seg.dpl, seg.present, seg.db, seg.l, seg.g, seg.avl)
        self.seg[_CS] = seg
        self.sbase[_CS] = 0 if (self.efer & EFER_LMA and seg.l) else seg.base
        self.update_mode()

    # -- stack helpers for the interpreters ---------------------------------------------

    def push(self, value: int, size: int) -> None:
        bits = self.stack_bits
        mask = (1 << bits) - 1 if bits != 64 else M64
        sp = (self.r[4] - size) & mask
        la = sp if bits == 64 else (self.sbase[_SS] + sp) & 0xFFFFFFFF
        self.write_mem(la, size, value & ((1 << (8 * size)) - 1))
        self._set_sp(sp)

    def pop(self, size: int) -> int:
        bits = self.stack_bits
        mask = (1 << bits) - 1 if bits != 64 else M64
        sp = self.r[4] & mask
        la = sp if bits == 64 else (self.sbase[_SS] + sp) & 0xFFFFFFFF
        value = self.read_mem(la, size)
        self._set_sp((sp + size) & mask)
        return value

    def _set_sp(self, sp: int) -> None:
        if self.stack_bits == 16:
            self.r[4] = (self.r[4] & ~0xFFFF) | sp
        else:
            self.r[4] = sp

    # -- NMI (SDM Vol. 3A §6.7.1 "Handling Multiple NMIs", §6.8.1) -------------------------

    nmi_latched = False   # one NMI received and not yet delivered (more collapse into it)
    nmi_blocked = False   # an NMI handler runs: NMIs wait until the next IRET

    def nmi_ready(self) -> bool:
        """Latch the NMIs the controller offers (``take_nmi``): one pending NMI at most, an
        NMI arriving while one is pending is lost. True if one is latched and not blocked.
        RFLAGS.IF does not mask NMIs."""
        take = getattr(self.controller, "take_nmi", None)
        if take is not None and take():
            self.nmi_latched = True
        return self.nmi_latched and not self.nmi_blocked

    def deliver_nmi(self) -> bool:
        """Deliver a latched, unblocked NMI through vector 2 and block further NMIs until
        an IRET; True when one was delivered (or its delivery ended in a triple fault)."""
        if not self.nmi_ready():
            return False
        self.nmi_latched = False
        self.nmi_blocked = True
        self.halted = False
        if not self._fault_external(2):
            self.stop_flag = self.attn = True
            self.stop_reason = "triple fault"
        self.irq_check = self.attn = True  # a maskable interrupt may follow at once
        return True

    # -- interrupt and exception delivery -------------------------------------------------

    def deliver(self, vector: int, error_code: int | None, soft: bool = False,
                external: bool = False) -> None:
        """Deliver ``vector`` with the current RIP as the return address."""
        self.halted = False
        if not self.cr0 & CR0_PE:
            self._deliver_real(vector)
        elif self.efer & EFER_LMA:
            self._deliver_long(vector, error_code, soft, external)
        else:
            self._deliver_protected(vector, error_code, soft, external)

    def _deliver_real(self, vector: int) -> None:
        if vector * 4 + 3 > self.idtr.limit:
            raise CpuFault(GP, vector * 8 + 2)
        entry = self.read_sys(self.idtr.base + vector * 4, 4)
        fl = self.flags()
        self.push(fl, 2)
        self.push(self.seg[_CS].selector, 2)
        self.push(self.rip, 2)
        self.fl &= ~(RFLAGS_IF | RFLAGS_TF | RFLAGS_AC | RFLAGS_RF)
        self.load_cs(self.code_segment(entry >> 16))
        self.rip = entry & 0xFFFF

    def _gate(self, vector: int, size: int, soft: bool, external: bool) -> tuple[int, int]:
        ext = 0 if soft else 1
        if vector * size + size - 1 > self.idtr.limit:
            raise CpuFault(GP, vector * 8 + 2 + ext)
        lo = self.read_sys(self.idtr.base + vector * size, 8)
        hi = self.read_sys(self.idtr.base + vector * size + 8, 8) if size == 16 else 0
        gtype = (lo >> 40) & 0x1F
        dpl = (lo >> 45) & 3
        if soft and dpl < self.cpl:
            raise CpuFault(GP, vector * 8 + 2)
        if not (lo >> 47) & 1:
            raise CpuFault(NP, vector * 8 + 2 + ext)
        return lo, hi | (gtype << 64)

    def _deliver_protected(self, vector, error_code, soft, external) -> None:
        lo, hi = self._gate(vector, 8, soft, external)
        gtype = hi >> 64
        if gtype == 0x5:              # a task gate: the handler is another task
            from x86vm.cpu import tasks
            tasks.switch(self, (lo >> 16) & 0xFFFF, "int", error_code)
            return
        if gtype not in (0x6, 0x7, 0xE, 0xF):
            raise CpuFault(GP, vector * 8 + 2)
        offset = (lo & 0xFFFF) | ((lo >> 32) & 0xFFFF0000)
        selector = (lo >> 16) & 0xFFFF
        fl = self.flags()
        self.fl &= ~RFLAGS_VM        # the handler's CS is a descriptor even from VM86
        try:
            cs = self.code_segment(selector)
            self._check_handler_level(cs, selector, soft, fl & RFLAGS_VM)
        except CpuFault:
            self.fl = fl
            raise
        gate32 = gtype & 8
        size = 4 if gate32 else 2
        old_cs, old_ss, old_sp = self.seg[_CS].selector, self.seg[_SS].selector, self.r[4]
        new_cpl = cs.dpl if not cs.type & 4 else self.cpl
        if new_cpl < self.cpl or fl & RFLAGS_VM:
            sel, sp = self.tss_stack(new_cpl)
            old_ss_seg = self.seg[_SS]
            self.fl &= ~RFLAGS_VM     # out of virtual-8086 mode before SS is loaded
            self.cpl_switch(cs, new_cpl)
            try:
                self.load_segment(_SS, sel)
            except CpuFault as exc:
                raise CpuFault(TS, sel & 0xFFFC) from exc
            self.r[4] = sp
            if fl & RFLAGS_VM:
                for s in (_GS, _FS, _DS, _ES):
                    self.push(self.seg[s].selector, size)
                    self.set_segment(s, Segment(0, 0, 0, 0, 1, 0, 0, unusable=1))
            self.push(old_ss, size)
            self.push(old_sp, size)
            del old_ss_seg
        else:
            self.load_cs(cs, new_cpl)
        self.push(fl, size)
        self.push(old_cs, size)
        self.push(self.rip, size)
        if error_code is not None:
            self.push(error_code, size)
        self.load_cs(cs, new_cpl)
        self.rip = offset if gate32 else offset & 0xFFFF
        self.fl &= ~(RFLAGS_TF | RFLAGS_NT | RFLAGS_VM | RFLAGS_RF)
        if not gtype & 1:
            self.fl &= ~RFLAGS_IF
        self.update_mode()

    def _check_handler_level(self, cs: Segment, selector: int, soft: bool, vm86: int) -> None:
        """A handler never runs less privileged than the interrupted code, and from
        virtual-8086 mode only in a non-conforming ring-0 segment (SDM Vol. 2A "INT n":
        #GP(selector + EXT))."""
        if cs.dpl > self.cpl or vm86 and (cs.type & 0x4 or cs.dpl):
            raise CpuFault(GP, (selector & 0xFFFC) | (0 if soft else 1))

    def cpl_switch(self, cs: Segment, cpl: int) -> None:
        self.load_cs(cs, cpl)

    def tss_stack(self, cpl: int) -> tuple[int, int]:
        """(SS, ESP) for privilege level ``cpl`` from the current TSS, 32- or 16-bit; #TS
        if the TSS is too short to hold them (SDM Vol. 3A Figures 8-2 and 8-11)."""
        tss32 = self.tr.type & 0x8
        at = 4 + cpl * 8 if tss32 else 2 + cpl * 4
        width = 4 if tss32 else 2
        if at + width + 1 > self.tr.limit:
            raise CpuFault(TS, self.tr.selector & 0xFFFC)
        sp = self.read_sys(self.tr.base + at, width)
        ss = self.read_sys(self.tr.base + at + width, 2)
        return ss, sp

    def _deliver_long(self, vector, error_code, soft, external) -> None:
        lo, hi = self._gate(vector, 16, soft, external)
        gtype = (hi >> 64) & 0xF
        if gtype not in (0xE, 0xF):
            raise CpuFault(GP, vector * 8 + 2)
        offset = (lo & 0xFFFF) | ((lo >> 32) & 0xFFFF0000) | ((hi & 0xFFFFFFFF) << 32)
        selector = (lo >> 16) & 0xFFFF
        ist = (lo >> 32) & 7
        cs = self.code_segment(selector)
        if not cs.l or cs.db:
            raise CpuFault(GP, selector & 0xFFFC)
        self._check_handler_level(cs, selector, soft, False)
        fl = self.flags()
        old_cs, old_ss, old_sp = self.seg[_CS].selector, self.seg[_SS].selector, self.r[4]
        new_cpl = cs.dpl if not cs.type & 4 else self.cpl
        if ist:
            rsp = self.read_sys(self.tr.base + 0x24 + 8 * (ist - 1), 8)
        elif new_cpl < self.cpl:
            rsp = self.read_sys(self.tr.base + 4 + 8 * new_cpl, 8)
        else:
            rsp = old_sp
        self.load_cs(cs, new_cpl)
        if new_cpl != (old_cs & 3):
            self.set_segment(_SS, Segment(new_cpl, 0, 0, 0, 1, 0, 0, unusable=1))
        self.r[4] = rsp & ~0xF
        for value in (old_ss, old_sp, fl, old_cs, self.rip):
            self.push(value, 8)
        if error_code is not None:
            self.push(error_code, 8)
        self.rip = offset
        self.fl &= ~(RFLAGS_TF | RFLAGS_NT | RFLAGS_VM | RFLAGS_RF)
        if not gtype & 1:
            self.fl &= ~RFLAGS_IF

    def iret(self, size: int) -> None:
        """IRET/IRETD/IRETQ (SDM Vol. 2A "IRET"): same level, to outer level, to VM86.
        It unblocks NMIs, even when it faults (SDM Vol. 3A §6.7.1)."""
        if self.nmi_blocked:
            self.nmi_blocked = False
            self.irq_check = self.attn = True
        if not self.cr0 & CR0_PE:
            ip = self.pop(size)
            cs = self.pop(size)
            fl = self.pop(size)
            self.load_cs(self.code_segment(cs))
            self.rip = ip
            keep = 0xFFFF0000 if size == 2 else 0x1A0000
            self.set_flags((self.flags() & keep) | (fl & ~keep))
            self.irq_check = self.attn = True
            return
        if self.fl & RFLAGS_VM:
            self._iret_vm86(size)
            return
        if self.fl & RFLAGS_NT and not self.efer & EFER_LMA:
            from x86vm.cpu import tasks  # return to the task in the back link
            tasks.switch(self, self.read_sys(self.tr.base, 2), "iret")
            self.irq_check = self.attn = True
            return
        ip = self.pop(size)
        cs_sel = self.pop(size) & 0xFFFF
        fl = self.pop(size)
        long64 = self.code_bits == 64
        if fl & RFLAGS_VM and self.cpl == 0 and not long64 and size == 4:
            sp, ss = self.pop(4), self.pop(4)
            es, ds, fs, gs = self.pop(4), self.pop(4), self.pop(4), self.pop(4)
            self.set_flags(fl)
            for i, sel in ((_ES, es), (_DS, ds), (_FS, fs), (_GS, gs), (_SS, ss)):
                self.seg[i] = Segment(sel & 0xFFFF, (sel & 0xFFFF) << 4, 0xFFFF, 3, 1, 3)
                self.sbase[i] = (sel & 0xFFFF) << 4
            self.r[4] = sp
            self.seg[_CS] = Segment(cs_sel, cs_sel << 4, 0xFFFF, 0xB, 1, 3)
            self.sbase[_CS] = cs_sel << 4
            self.rip = ip & 0xFFFF
            self.update_mode()
            self.irq_check = self.attn = True
            return
        rpl = cs_sel & 3
        cs = self.code_segment(cs_sel)
        if rpl < self.cpl:
            raise CpuFault(GP, cs_sel & 0xFFFC)
        old_cpl = self.cpl
        if rpl > self.cpl or long64:
            sp = self.pop(size)
            ss = self.pop(size) & 0xFFFF
        else:
            sp = ss = None
        keep = 0
        if size == 2:
            keep = 0xFFFF0000
        self._set_iret_flags(fl, keep, old_cpl)
        self.load_cs(cs, rpl)
        self.rip = ip & (0xFFFF if size == 2 else M64)
        if sp is not None:
            if ss & ~3 == 0 and self.code_bits == 64:
                self.set_segment(_SS, Segment(ss, 0, 0, 0, 1, 0, 0, unusable=1))
            else:
                self.load_segment(_SS, ss)
            self.r[4] = sp
            if rpl > old_cpl:
                self.null_outer_data_segments()
        self.irq_check = self.attn = True

    def null_outer_data_segments(self) -> None:
        """After a return to an outer level: ES, DS, FS and GS holding a data or
        non-conforming code segment more privileged than the new CPL become null (SDM Vol.
        2A "IRET", Vol. 2B "RET": "SegmentSelector ← 0"). Only the selector: the hidden
        base and limit stay (not present, unusable), so in 64-bit mode FS and GS still
        address memory through their bases — QEMU's validate_seg does the same."""
        for index in (_ES, _DS, _FS, _GS):
            seg = self.seg[index]
            if seg.selector & ~3 == 0 or not seg.s:
                continue
            if seg.type & 0xC != 0xC and seg.dpl < self.cpl:
                self.set_segment(index, replace(seg, selector=0, present=0, unusable=1))

    def _iret_vm86(self, size: int) -> None:
        """IRET inside virtual-8086 mode: as in real mode with IOPL 3 (VM and IOPL kept),
        else #GP(0) for the monitor (SDM Vol. 2A "IRET", RETURN-FROM-VIRTUAL-8086-MODE)."""
        if (self.fl >> 12) & 3 != 3:
            raise CpuFault(GP, 0)
        ip = self.pop(size)
        cs = self.pop(size) & 0xFFFF
        fl = self.pop(size)
        if ip > 0xFFFF:
            raise CpuFault(GP, 0)
        self.load_cs(self.code_segment(cs))
        self.rip = ip
        keep = 0xFFFF3000 if size == 2 else 0x1A3000    # VM, VIF, VIP, IOPL stay
        self.set_flags((self.flags() & keep) | (fl & ~keep))
        self.irq_check = self.attn = True

    def _set_iret_flags(self, fl: int, keep: int, cpl: int) -> None:
        cur = self.flags()
        mask = 0x257FD5  # CF PF AF ZF SF TF DF OF NT RF AC ID (+IF/IOPL by privilege)
        if cpl <= ((cur >> 12) & 3):
            mask |= RFLAGS_IF
        if cpl == 0:
            mask |= 0x3000 | 0x180000   # IOPL, VIF, VIP
        mask &= ~keep
        self.set_flags((cur & ~mask) | (fl & mask))
