"""Intel 8254 programmable interval timer (ports 0x40-0x43) and the PC's port 0x61.

Three counters clocked at 1.193182 MHz (QEMU's figure; 14.31818 MHz / 12). Counter 0's OUT
drives ISA IRQ 0, counter 1 (DRAM refresh) is not wired, counter 2's GATE is port 0x61 bit 0
and its OUT is port 0x61 bit 5 (the speaker). Nothing ticks: every count and output level is
computed from the guest clock (``TimerService.clock_ns``) and the time the count was loaded,
and counter 0 schedules one guest-time callback per change of its OUT pin.

Control word (port 0x43; 8254 datasheet, "Control Word Format"):

===== ==================================================================================
bits  meaning
===== ==================================================================================
7-6   SC: counter 0-2; 11 = read-back command
5-4   RW: 00 counter latch command, 01 LSB only, 10 MSB only, 11 LSB then MSB
3-1   M: mode 0-5 (x10 = 2, x11 = 3)
0     BCD: 0 = 16-bit binary, 1 = four BCD decades
===== ==================================================================================

Read-back ("Read-Back Command"): bit 5 = 0 latches the count, bit 4 = 0 latches the status of each
counter selected by bits 3-1. Status byte ("Status Byte"): bit 7 OUT, bit 6 NULL COUNT, bits 5-0
as programmed (RW, M, BCD). A latched status is read before a latched count; a latch holds
until read, and later latch commands for the same counter are ignored until then.

Modes (datasheet "Mode Definitions"; N = the count, 0 meaning 2^16 or 10^4 in BCD):

==== =============================== ==========================================================
mode name                            OUT
==== =============================== ==========================================================
0    interrupt on terminal count     low from the control word until N counts after loading
1    hardware retriggerable one-shot high; low for N counts after a GATE rising edge
2    rate generator                  high; low for one count every N counts
3    square wave                     high for ceil(N/2), low for floor(N/2) counts, repeating
4    software triggered strobe       high; low for one count N counts after loading
5    hardware triggered strobe       high; low for one count N counts after a GATE rising edge
==== =============================== ==========================================================

GATE ("Gate Pin Operations Summary"): low disables counting in modes 0, 2, 3, 4 (and
sets OUT high at once in modes 2 and 3); a rising edge (re)starts modes 1, 5 and reloads
modes 2, 3. Counters 0 and 1 have GATE tied high.

Timing follows QEMU where the datasheet leaves a choice to the implementation: a count takes
effect when its last byte is written (no extra CLK for loading), and a new count written to a
running mode 2/3 counter restarts it at once. OUT edges closer together than
:data:`MIN_EVENT_NS` of guest time are coalesced into one pulse on IRQ 0, so a guest that
programs a count of 1 gets at most one callback per ``MIN_EVENT_NS``; the one-count low pulse
of modes 2, 4 and 5 is handled by a single callback at its end, so IRQ 0's rising edges come
on time. Before it is programmed, OUT (and IRQ 0) is high, so programming mode 2 or 3 gives
no extra edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from x86vm.devices.ports import ByteRegisters
from x86vm.machine.irq import IrqLine, TimerHandle, TimerService

PIT_PORT = 0x40
PORT_61 = 0x61
PIT_HZ = 1_193_182
NS_PER_S = 1_000_000_000
MIN_EVENT_NS = 10_000  # at most 100,000 OUT-change callbacks per second of guest time
REFRESH_TOGGLE_NS = 15_085  # port 0x61 bit 4 toggles every 15.085 us (refresh request)


class RW(IntEnum):
    LATCH = 0
    LSB = 1
    MSB = 2
    WORD = 3


STATUS_OUT, STATUS_NULL_COUNT = 0x80, 0x40
READBACK_COUNT_OFF, READBACK_STATUS_OFF = 0x20, 0x10
PORT61_GATE2, PORT61_SPEAKER, PORT61_REFRESH, PORT61_OUT2 = 0x01, 0x02, 0x10, 0x20


def _bcd4(value: int) -> int:
    return sum(((value // 10**i) % 10) << (4 * i) for i in range(4))


def _from_bcd4(value: int) -> int:
    return sum(min((value >> (4 * i)) & 0xF, 9) * 10**i for i in range(4))


@dataclass
class Counter:
    """One counter's programming and timing state; ``now`` is guest time in ns."""

    index: int
    mode: int = 3  # the mode in effect (6 and 7 are modes 2 and 3)
    mode_bits: int = 3  # M2-M1-M0 as written, for the status byte
    rw: RW = RW.WORD
    bcd: bool = False
    reload: int = 0  # the count register as written (raw, BCD digits if bcd)
    loaded: bool = False  # a count is in the counting element
    load_ns: int = 0  # guest time of tick 0 of the running count
    paused_ticks: int | None = None  # ticks at which GATE low froze counting
    gate: bool = True
    triggered: bool = False  # modes 1 and 5: a GATE edge started the count
    null_count: bool = True
    write_lsb_pending: bool = False  # RW = 11: the LSB was written, the MSB is next
    write_lsb: int = 0
    read_msb_next: bool = False  # RW = 11 live reads: the LSB was read
    latched_count: list[int] = field(default_factory=list)  # bytes still to be read
    latched_status: int | None = None

    # -- the count and OUT as functions of time ---------------------------------------

    @property
    def modulus(self) -> int:
        return 10_000 if self.bcd else 0x10000

    @property
    def n(self) -> int:
        """N in counts (0 means the full range)."""
        value = _from_bcd4(self.reload) if self.bcd else self.reload
        return value or self.modulus

    @property
    def periodic(self) -> bool:
        return self.mode in (2, 3)

    @property
    def waiting_for_gate(self) -> bool:
        return self.mode in (1, 5) and not self.triggered

    def ticks(self, now: int) -> int:
        """Counts elapsed since the count started (frozen while GATE disables counting)."""
        if self.paused_ticks is not None:
            return self.paused_ticks
        return max(0, (now - self.load_ns) * PIT_HZ // NS_PER_S)

    def tick_time(self, tick: int) -> int:
        """Guest time (ns) at which ``tick`` counts have elapsed (ceiling)."""
        return self.load_ns + -(-tick * NS_PER_S // PIT_HZ)

    def value(self, now: int) -> int:
        """The counting element as the guest reads it (BCD-encoded in BCD mode)."""
        if not self.loaded or self.waiting_for_gate:
            count = self.n % self.modulus
        else:
            d, n = self.ticks(now), self.n
            if self.mode == 2:
                count = n - d % n
            elif self.mode == 3:
                count = n - (2 * d) % n  # decrements by two, reloaded each half period
                count -= count & 1 and n & 1  # odd N counts even values N-1, N-3, ...
            else:
                count = n - d
            count %= self.modulus
        return _bcd4(count) if self.bcd else count

    def out(self, now: int) -> bool:
        if not self.loaded:
            return self.mode != 0  # mode 0: OUT low after the control word; others high
        if self.waiting_for_gate:
            return True
        if self.periodic and not self.gate:
            return True
        d, n = self.ticks(now), self.n
        if self.mode == 0:
            return d >= n
        if self.mode == 1:
            return d >= n
        if self.mode == 2:
            return n == 1 or d % n != n - 1
        if self.mode == 3:
            return d % n < (n + 1) // 2
        return d != n  # modes 4 and 5: one count low at terminal count

    def rising_edges(self, d0: int, d1: int) -> int:
        """OUT rising edges in the tick interval (d0, d1]."""
        if d1 <= d0 or not self.loaded or self.waiting_for_gate:
            return 0
        n = self.n
        if self.periodic:
            return d1 // n - d0 // n
        edge = n if self.mode in (0, 1) else n + 1
        return int(d0 < edge <= d1)

    def next_change(self, d: int) -> int | None:
        """The first tick after ``d`` at which OUT changes, or None."""
        if not self.loaded or self.waiting_for_gate or self.paused_ticks is not None:
            return None
        n = self.n
        if self.mode in (0, 1):
            return n if d < n else None
        if self.mode in (4, 5):
            return next((t for t in (n, n + 1) if t > d), None)
        period_start = d - d % n
        if self.mode == 2:
            points = (period_start + n - 1, period_start + n) if n > 1 else (d + 1,)
        else:
            points = (period_start + (n + 1) // 2, period_start + n)
        return next(t for t in points if t > d)

    # -- programming -----------------------------------------------------------------------

    def control(self, rw: RW, mode: int, bcd: bool) -> None:
        self.rw, self.mode_bits, self.bcd = rw, mode, bcd
        self.mode = mode if mode < 6 else mode & 3
        self.loaded = False
        self.triggered = False
        self.null_count = True
        self.write_lsb_pending = self.read_msb_next = False
        self.paused_ticks = None

    def load(self, now: int) -> None:
        """A complete count was written: it enters the counting element now."""
        self.loaded = True
        if self.mode in (1, 5):
            return  # loaded at the next GATE rising edge; a running one-shot keeps going
        self.null_count = False
        self.load_ns = now
        self.paused_ticks = None
        if not self.gate and self.mode in (0, 2, 3, 4):
            self.paused_ticks = 0

    def set_gate(self, level: bool, now: int) -> None:
        rising = level and not self.gate
        if not level and self.gate and self.loaded and self.paused_ticks is None:
            if self.mode in (0, 2, 3, 4):
                self.paused_ticks = self.ticks(now)
        self.gate = level
        if not rising:
            return
        if self.mode in (1, 5) and self.loaded:
            self.triggered, self.null_count = True, False
            self.load_ns, self.paused_ticks = now, None
        elif self.mode in (2, 3) and self.loaded:
            self.load_ns, self.paused_ticks = now, None  # reload and restart
        elif self.paused_ticks is not None:
            self.load_ns = now - -(-self.paused_ticks * NS_PER_S // PIT_HZ)
            self.paused_ticks = None

    def latch_count(self, now: int) -> None:
        if self.latched_count:
            return  # the first latch holds until read
        value = self.value(now)
        lsb, msb = value & 0xFF, value >> 8
        self.latched_count = {RW.LSB: [lsb], RW.MSB: [msb]}.get(self.rw, [lsb, msb])

    def latch_status(self, now: int) -> None:
        if self.latched_status is None:
            self.latched_status = ((STATUS_OUT if self.out(now) else 0)
                                   | (STATUS_NULL_COUNT if self.null_count else 0)
                                   | self.rw << 4 | self.mode_bits << 1 | int(self.bcd))

    def read(self, now: int) -> int:
        if self.latched_status is not None:
            status, self.latched_status = self.latched_status, None
            return status
        if self.latched_count:
            return self.latched_count.pop(0)
        value = self.value(now)
        if self.rw == RW.LSB:
            return value & 0xFF
        if self.rw == RW.MSB:
            return value >> 8
        self.read_msb_next = not self.read_msb_next
        return value & 0xFF if self.read_msb_next else value >> 8

    def write(self, value: int, now: int) -> bool:
        """A count byte; returns True when the count is complete and loaded."""
        if self.rw == RW.LSB:
            self.reload = value
        elif self.rw == RW.MSB:
            self.reload = value << 8
        elif not self.write_lsb_pending:
            self.write_lsb, self.write_lsb_pending = value, True
            if self.mode == 0:  # "writing the first byte disables counting", OUT low
                self.loaded = False
            return False
        else:
            self.reload = self.write_lsb | value << 8
            self.write_lsb_pending = False
        self.load(now)
        return True


class Pit8254(ByteRegisters):
    """The three counters at 0x40-0x43; counter 0's OUT drives ``irq0``."""

    span = 4

    def __init__(self, timers: TimerService, irq0: IrqLine) -> None:
        self.timers = timers
        self.irq0 = irq0
        self.counters = [Counter(i) for i in range(3)]
        self.counters[2].gate = False  # port 0x61 bit 0 resets to 0
        self.port61 = Port61(self)
        self._irq_level = False
        self._event: TimerHandle | None = None
        self._event_tick = 0  # the counter-0 tick the last event looked at
        self.events = 0  # counter-0 callbacks run (for storm tests)
        self._drive_irq(self.counters[0].out(timers.clock_ns()))  # OUT before programming

    def register(self, pio) -> None:
        pio.register(PIT_PORT, 4, self, "pit")
        pio.register(PORT_61, 1, self.port61, "port61")

    # -- ports --------------------------------------------------------------------------

    def read_byte(self, offset: int) -> int:
        if offset == 3:
            return 0xFF  # the control word cannot be read ("Read/Write Operations Summary")
        return self.counters[offset].read(self.timers.clock_ns())

    def write_byte(self, offset: int, value: int) -> None:
        now = self.timers.clock_ns()
        if offset < 3:
            if self.counters[offset].write(value, now) or offset == 0:
                self._counter_changed(offset)
            return
        select = value >> 6
        if select == 3:  # read-back command
            for i in range(3):
                if value & (2 << i):
                    if not value & READBACK_COUNT_OFF:
                        self.counters[i].latch_count(now)
                    if not value & READBACK_STATUS_OFF:
                        self.counters[i].latch_status(now)
            return
        counter = self.counters[select]
        rw = RW((value >> 4) & 3)
        if rw == RW.LATCH:
            counter.latch_count(now)
            return
        counter.control(rw, (value >> 1) & 7, bool(value & 1))
        self._counter_changed(select)

    # -- counter 0 → IRQ 0 --------------------------------------------------------------

    def _counter_changed(self, index: int) -> None:
        if index != 0:
            return
        counter = self.counters[0]
        now = self.timers.clock_ns()
        self._event_tick = counter.ticks(now)
        self._drive_irq(counter.out(now))
        self._schedule(now)

    def _drive_irq(self, level: bool) -> None:
        if level != self._irq_level:
            self._irq_level = level
            self.irq0.set_level(level)

    def _schedule(self, now: int) -> None:
        if self._event is not None:
            self._event.cancel()
            self._event = None
        counter = self.counters[0]
        tick = counter.next_change(self._event_tick)
        if tick is None:
            return
        after = counter.next_change(tick)
        if after is not None and counter.tick_time(after) - counter.tick_time(tick) < MIN_EVENT_NS:
            tick = after  # a short pulse (mode 2, 4, 5): both edges at its end, on time
        deadline = max(counter.tick_time(tick), now + MIN_EVENT_NS)
        self._event = self.timers.at(deadline, self._on_event)

    def _on_event(self) -> None:
        self._event = None
        self.events += 1
        counter = self.counters[0]
        now = self.timers.clock_ns()
        d = counter.ticks(now)
        level = counter.out(now)
        if counter.rising_edges(self._event_tick, d) and not (level and not self._irq_level):
            self._drive_irq(False)  # edges were coalesced: the controllers see one of them
            self._drive_irq(True)
        self._drive_irq(level)
        self._event_tick = d
        self._schedule(now)

    # -- counter 2 gate / speaker (port 0x61) ---------------------------------------------

    def snapshot(self) -> dict[str, object]:
        """Each counter's programming and what the guest would read now."""
        now = self.timers.clock_ns()
        return {"irq0": self._irq_level, "speaker": self.port61.speaker_data,
                "counters": [{"mode": c.mode_bits, "rw": int(c.rw), "bcd": c.bcd,
                              "reload": c.reload, "gate": c.gate, "out": c.out(now),
                              "value": c.value(now), "null_count": c.null_count}
                             for c in self.counters]}

    def set_gate2(self, level: bool) -> None:
        self.counters[2].set_gate(level, self.timers.clock_ns())

    def out2(self) -> bool:
        return self.counters[2].out(self.timers.clock_ns())


class Port61(ByteRegisters):
    """System control port B: bit 0 counter 2 GATE, bit 1 speaker data (R/W); bit 4 refresh
    toggle and bit 5 counter 2 OUT (read only)."""

    span = 1

    def __init__(self, pit: Pit8254) -> None:
        self.pit = pit
        self.speaker_data = False

    def read_byte(self, offset: int) -> int:
        now = self.pit.timers.clock_ns()
        refresh = PORT61_REFRESH if (now // REFRESH_TOGGLE_NS) & 1 else 0
        return ((PORT61_GATE2 if self.pit.counters[2].gate else 0)
                | (PORT61_SPEAKER if self.speaker_data else 0) | refresh
                | (PORT61_OUT2 if self.pit.out2() else 0))

    def write_byte(self, offset: int, value: int) -> None:
        self.speaker_data = bool(value & PORT61_SPEAKER)
        self.pit.set_gate2(bool(value & PORT61_GATE2))
