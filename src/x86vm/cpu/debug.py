"""What a debugger asks of the vCPU: breakpoints, data watchpoints, single step, and the
hooks that trace exceptions, interrupts, control-register changes and instructions.

Nothing here touches guest memory. A breakpoint is a linear address checked before the
instruction there runs, as an enabled DR0-DR3 execute breakpoint is (SDM Vol. 3B §18.2.4): a
translated block is entered normally, and only a block with a breakpoint *inside* it is run
one instruction at a time up to the breakpoint. Resuming passes the breakpoint we stopped at
once, as RFLAGS.RF does (§18.3.1.1).

A watchpoint (address, length, kind "w" or "rw") keeps the linear page it lies on out of the
software TLB, so every access to that page takes the slow path of :mod:`x86vm.cpu.mmu`, which
asks :meth:`DebugMixin.watch_access`. A write that hits completes; its block stops after the
instruction (through ``cpu.pending``, as a write to code does) and the stop reports the slot
in DR6 B0-B3 (§18.2.3) — a data breakpoint is a trap. A read that hits stops the instruction
before it has written anything (:class:`WatchRead`); the instruction is then run alone with
reads let through and the stop follows it.

The trace hooks are None when their event is off: each is tested where the event happens (a
fault, an interrupt, a CR write, a translation), never per instruction. Instruction tracing
runs the debug dispatcher, one instruction per block, and records each retired instruction.

The dispatcher here (:meth:`DebugMixin._run_debug`) is used only while one of these is on:
:meth:`x86vm.cpu.core.Cpu.run` tests ``debugging`` once per call.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import compress
from operator import ne

from x86vm.cpu.cpuid import VENDOR
from x86vm.cpu.errors import DB, CpuFault, NeedsRead
from x86vm.cpu.state import RFLAGS_RF

DR6_BS = 1 << 14  # single step (SDM Vol. 3B §18.2.3)
PAGE_SHIFT = 12


def _pages(watches) -> frozenset[int]:
    """The linear pages ``(address, length, ...)`` watches touch."""
    return frozenset(a >> PAGE_SHIFT for a, n, *_ in watches) | frozenset(
        (a + n - 1) >> PAGE_SHIFT for a, n, *_ in watches)


class WatchRead(Exception):
    """A read of a watched address in a block: the instruction runs again alone."""


class DebugMixin:
    """Debugger controls and trace hooks of :class:`x86vm.cpu.core.Cpu`."""

    def _init_debug(self) -> None:
        self.breakpoints: dict[int, int] = {}   # linear address -> DR6 bits of its stop
        self.single_step = False
        self.int3_stops = False       # an int3 stops the run instead of raising #BP
        self.watches: tuple[tuple[int, int, int, bool], ...] = ()  # (address, len, slot, reads)
        self.watch_pages: frozenset[int] = frozenset()
        self.watch_reads_pass = False  # the instruction re-run after a WatchRead
        self.watch_hits = 0            # DR6 bits of watchpoints hit, not reported yet
        self.debug_dr6 = 0             # why the last "debug" stop happened
        self.debugging = False
        self.guest_bps: dict[int, int] = {}   # the guest's DR0-3 execute breakpoints
        self.guest_watches: tuple[tuple[int, int, int, bool], ...] = ()  # and data ones
        self.guest_watch_hits = 0      # DR6 B0-B3 of guest data breakpoints hit
        self.rf_armed = False          # RFLAGS.RF passed one instruction boundary
        self._debugger_watch_pages: frozenset[int] = frozenset()
        self._resume_at: int | None = None          # a breakpoint we stopped at, to pass
        self.trace_exception: Callable[..., None] | None = None  # (vector, error, rip)
        self.trace_irq: Callable[..., None] | None = None        # (vector,)
        self.trace_cr: Callable[..., None] | None = None         # (register, old, new)
        self.trace_insn: Callable[..., None] | None = None       # (address, bytes, bits, regs)
        self.trace_block: Callable[..., None] | None = None      # (address, bytes, insns)

    def set_debug(self, breakpoints: dict[int, int], single_step: bool,
                  watches: tuple[tuple[int, int, int, bool], ...], int3_stops: bool) -> None:
        """Arm the debugger's controls (between runs); ``watches`` are (linear address,
        length, DR6 bit number, reads too)."""
        self.breakpoints = dict(breakpoints)
        self.single_step = single_step
        self.int3_stops = int3_stops
        self.watches = tuple(watches)
        self._debugger_watch_pages = _pages(watches)
        self._set_watch_pages()

    def _set_watch_pages(self) -> None:
        self.watch_pages = self._debugger_watch_pages | _pages(self.guest_watches)
        self.flush_tlb()   # watched pages leave the TLB (the slow path checks them)
        self._update_debugging()

    def set_guest_breakpoints(self) -> None:
        """The guest's own breakpoints, from DR0-DR3 as DR7 enables them (SDM Vol. 3B
        §18.2.4, either its L or G bit): R/W 00 an execute breakpoint, a #DB fault before
        the instruction at the address unless RFLAGS.RF; 01 (write) and 11 (read or write)
        data breakpoints of 1, 2, 4 or 8 bytes (LEN), a #DB trap after the access. I/O
        breakpoints (R/W 10) are not modelled."""
        dr7 = self.dr[5]
        bps: dict[int, int] = {}
        watches = []
        for n in range(4):
            if not (dr7 >> (2 * n)) & 3:
                continue
            kind = (dr7 >> (16 + 4 * n)) & 3
            length = (1, 2, 8, 4)[(dr7 >> (18 + 4 * n)) & 3]
            if kind == 0:
                bps[self.dr[n]] = bps.get(self.dr[n], 0) | 1 << n
            elif kind != 2:
                watches.append((self.dr[n] & ~(length - 1), length, n, kind == 3))
        self.guest_bps = bps
        if tuple(watches) != self.guest_watches:
            self.guest_watches = tuple(watches)
            self._set_watch_pages()
        self._update_debugging()

    def set_trace_insn(self, record: Callable[..., None] | None) -> None:
        self.trace_insn = record
        self._update_debugging()

    def _update_debugging(self) -> None:
        self.debugging = bool(self.breakpoints or self.single_step or self.watches
                              or self.trace_insn is not None or self.guest_bps
                              or self.guest_watches)
        self.attn = True

    # -- watchpoints (called from the MMU's slow paths) ------------------------------------

    def watch_access(self, la: int, size: int, write: bool) -> None:
        """An access to ``[la, la + size)`` on a watched page."""
        for address, length, slot, reads in self.guest_watches:
            if la < address + length and address < la + size and (write or reads):
                self.guest_watch_hits |= 1 << slot   # the guest's #DB after the instruction
                self.attn = True
        hits = 0
        for address, length, slot, reads in self.watches:
            if la < address + length and address < la + size and (write or reads):
                hits |= 1 << slot
        if not hits:
            return
        if not write and not self.watch_reads_pass:
            raise WatchRead()
        self.watch_hits |= hits
        if write:
            self.pending.append(("watch", 0, 0, 0))   # the block stops after the instruction

    # -- the debugging dispatcher ---------------------------------------------------------

    def _run_debug(self, limit: int) -> str:
        """Run with breakpoints, watchpoints, single step or instruction tracing on; stops
        with "debug" (``debug_dr6`` says why) or any reason of ``Cpu.run``."""
        single, lookup = self.translator.single, self.translator.lookup
        bps = self.breakpoints
        guest_bps = self.guest_bps
        record = self.trace_insn
        alone = record is not None or self.single_step or bool(self.guest_watches)
        rerun = False     # the instruction after a WatchRead, reads let through
        while True:
            one = alone or rerun
            # Intel inhibits an execute breakpoint on the instruction after MOV SS / POP SS;
            # AMD delivers it (kvm-unit-tests emulator "#DB suppressed/occurred after MOV SS")
            movss_blocked = self.movss_shadow and self.vendor == VENDOR
            if self.attn and not rerun:
                r = self._attention()
                if r == "one":
                    one = True
                elif r is not None:
                    return r
            la = self.sbase[1] + self.rip
            if la in bps and self._resume_at != la:
                self._resume_at = la
                self.debug_dr6 = bps[la]
                return "debug"
            self._resume_at = None
            if la in guest_bps and not self.fl & RFLAGS_RF and not movss_blocked:
                # the guest's own execute breakpoint: a #DB fault
                self.dr[4] = (self.dr[4] & ~0xF) | guest_bps[la]
                if not self._fault(CpuFault(DB)):
                    return "shutdown"
                continue
            if guest_bps is not self.guest_bps:   # the guest changed DR7: start again
                return "budget"
            if one:
                blk = single(la)
            else:
                blk = lookup(la)
                if (bps or guest_bps) and len(blk.rips) > 1 \
                        and self._breakpoint_inside(blk.rips):
                    blk = single(la)
            if record is not None:
                before = self.r[:]
                flags_before = self.flags()
            self.watch_reads_pass = rerun
            try:
                self.icount += blk(self)
            except CpuFault as exc:
                self.icount += self.bi
                self.rip = blk.rips[self.bi]
                self.tf_armed = False
                rerun = self.watch_reads_pass = False
                if not self._fault(exc):
                    return "shutdown"
            except NeedsRead as exc:
                self.icount += self.bi
                self.rip = blk.rips[self.bi]
                self.needs_read = exc
                self.watch_reads_pass = False
                self._resume_at = self.sbase[1] + self.rip
                return "io"
            except WatchRead:
                self.icount += self.bi
                self.rip = blk.rips[self.bi]
                self._resume_at = self.sbase[1] + self.rip
                rerun = True
                continue
            else:
                if record is not None:
                    self._record_insn(record, blk, la, before, flags_before)
                rerun = self.watch_reads_pass = False
            if self.pending:
                return "io"   # the machine hands out the writes, then our stop (stop_after_io)
            if self.watch_hits or self.single_step:
                return self._stop_after_instruction()
            if self.icount >= limit:
                return "budget"

    def _breakpoint_inside(self, rips: list[int]) -> bool:
        base, bps, guest = self.sbase[1], self.breakpoints, self.guest_bps
        return any(base + rip in bps or base + rip in guest for rip in rips[1:])

    def _stop_after_instruction(self) -> str:
        """A watchpoint hit or a step: "debug", with DR6 saying which."""
        self.debug_dr6 = self.watch_hits | (DR6_BS if self.single_step else 0)
        self.watch_hits = 0
        self._resume_at = self.sbase[1] + self.rip if self.single_step else None
        return "debug"

    def stop_after_io(self) -> bool:
        """After the writes of an instruction went out: stop for the debugger now (a
        watchpoint hit or a step)? Sets ``debug_dr6`` when it does."""
        if self.watch_hits or self.single_step:
            self._stop_after_instruction()
            return True
        return False

    def _record_insn(self, record, blk, la: int, before: list[int], flags_before: int) -> None:
        r = self.r
        changes = tuple(compress(enumerate(r), map(ne, before, r))) if before != r else ()
        flags = self.flags()
        if flags != flags_before:
            changes += ((16, flags),)
        record(la, getattr(blk, "code", b""), self.code_bits, changes)
