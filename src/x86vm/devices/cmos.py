"""Motorola MC146818A real-time clock and CMOS RAM, at ports 0x70 (index) / 0x71 (data).

Port 0x70 (write only; reads float to 0xff, as under QEMU): bits 6-0 select one of the 128
bytes, bit 7 is the PC's NMI mask (1 = NMI disabled), recorded in :attr:`Cmos.nmi_disabled`.
Port 0x71 reads or writes the selected byte.

RTC registers (MC146818A datasheet, Figure "Address Map" and Table 3 "Time, Calendar and
Alarm Data Modes"): 0x00 seconds, 0x02 minutes, 0x04 hours, 0x06 day of week (1 = Sunday),
0x07 day of month, 0x08 month, 0x09 year; 0x01/0x03/0x05 are the alarm bytes (plain RAM
here), 0x0a-0x0d are status registers A-D. Values are BCD unless register B's DM bit is set,
and hours are 12-hour with bit 7 = PM unless B's 24/12 bit is set. Time comes from the
``clock_ns`` callable plus a wall-clock start (UTC, like QEMU's ``-rtc base=utc``).

* Register A: UIP (bit 7, read only) reads 1 during the last 244 µs before each second ticks
  — the window in which the datasheet says an update may begin; divider and rate bits are
  stored (the divider does not stop the clock here). RS3-0 select the periodic rate
  (datasheet Table 5 "Periodic Interrupt Rate"): 0 none, 1 and 2 the 3.90625 and 7.8125 ms
  of rates 8 and 9 (32.768 kHz time base), n ≥ 3 a period of 2^(n-1) / 32768 s; the
  periodic flag needs the divider at 010 (32.768 kHz), as in QEMU.
* Register B: SET (bit 7) freezes the time registers so software can load them; clearing it
  restarts the clock from the loaded values. Setting SET clears UIE (as QEMU does, checked).
* Register C: interrupt flags, cleared by reading (which lowers IRQ 8). UF is set once the
  clock has passed a second boundary since the last read; PF once a periodic boundary has
  passed while PIE is set (QEMU 7.2 runs the divider tap only then; the datasheet sets PF
  regardless of PIE); AF when an update-ended second matched the alarm bytes (0xC0-0xFF in
  an alarm byte matches any value). IRQF = (PF and PIE) or (AF and AIE) or (UF and UIE), and IRQ 8
  follows IRQF. With ``timers`` (the machine's guest-time service) the flags of enabled
  interrupts are set by ``at()`` callbacks at the periodic boundary or the second, so the
  interrupt arrives on time; flags of disabled interrupts are found when C is read (AF only
  while AIE or UIE runs the once-a-second callback).
* Register D: VRT (bit 7) = RAM and time valid; read only.

Bytes 0x0e-0x7f are battery-backed RAM; the ones QEMU's PC firmware reads are filled in by
:func:`pc_cmos_layout` (table below; checked byte-for-byte against QEMU 7.2 ``-M pc``).
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable

from x86vm.devices.ports import ByteRegisters, from_bcd, to_bcd
from x86vm.machine.irq import IrqLine, TimerHandle, TimerService

CMOS_PORT = 0x70
RTC_IRQ = 8
CMOS_SIZE = 128

SECONDS, SECONDS_ALARM, MINUTES, MINUTES_ALARM, HOURS, HOURS_ALARM = range(6)
DAY_OF_WEEK, DAY_OF_MONTH, MONTH, YEAR = range(6, 10)
REG_A, REG_B, REG_C, REG_D = range(0x0A, 0x0E)
CENTURY = 0x32  # IBM PC/AT convention
CENTURY_PS2 = 0x37

A_UIP = 0x80
B_SET, B_PIE, B_AIE, B_UIE, B_SQWE, B_DM_BINARY, B_24H, B_DSE = (
    0x80, 0x40, 0x20, 0x10, 0x08, 0x04, 0x02, 0x01)
C_IRQF, C_PF, C_AF, C_UF = 0x80, 0x40, 0x20, 0x10
D_VRT = 0x80

RESET_A = 0x26  # 32.768 kHz time base (DV = 010), 1024 Hz periodic rate (QEMU's value)
RESET_B = B_24H  # BCD, 24-hour (QEMU's value)
UIP_WINDOW_NS = 244_000
A_DIVIDER, A_RATE, DIVIDER_32K = 0x70, 0x0F, 0x20
ALARM_ANY = 0xC0  # an alarm byte of 11xxxxxx matches every value (datasheet, "Alarm")
SECOND_NS = 1_000_000_000


def periodic_ns(reg_a: int) -> int | None:
    """The periodic interrupt period of register A (Table 5), None when off."""
    rate = reg_a & A_RATE
    if rate == 0 or reg_a & A_DIVIDER != DIVIDER_32K:
        return None
    if rate <= 2:
        rate += 7
    return (SECOND_NS << (rate - 1)) // 32768
MIN_YEAR, MAX_YEAR = 1900, 9899  # a guest-written date outside these years is ignored
TIME_FIELDS = (SECONDS, MINUTES, HOURS, DAY_OF_WEEK, DAY_OF_MONTH, MONTH, YEAR, CENTURY)

ClockNs = Callable[[], int]


def pc_cmos_layout(ram_below_4g: int, ram_above_4g: int, num_cpus: int = 1) -> dict[int, int]:
    """The CMOS bytes QEMU's ``pc`` machine stores for its firmware (``pc_cmos_init``).

    ====== ===================================================================
    0x10   floppy drive types (none)
    0x12   hard disk types (none)
    0x14   equipment byte: bit 1 math coprocessor, bit 2 PS/2 mouse
    0x15   base memory in KiB (640), little-endian 16-bit at 0x15-0x16
    0x17   extended memory 1 MiB..: KiB, capped at 0xffff (0x17-0x18, again at 0x30-0x31)
    0x34   memory 16 MiB..4 GiB in 64 KiB units, capped at 0xffff (0x34-0x35)
    0x38   boot: third boot device in bits 7-4 (none)
    0x3d   boot: first device bits 3-0, second bits 7-4 (2 = disk, 1 = floppy)
    0x5b   memory above 4 GiB in 64 KiB units, 24-bit little-endian (0x5b-0x5d)
    0x5f   number of CPUs minus one
    ====== ===================================================================
    """
    kib, unit64k = 1024, 64 * 1024
    extended = min(max(ram_below_4g // kib - 1024, 0), 0xFFFF)
    above_16m = min(max(ram_below_4g - (16 << 20), 0) // unit64k, 0xFFFF)
    above_4g = min(ram_above_4g // unit64k, 0xFFFFFF)
    layout = {0x10: 0x00, 0x12: 0x00, 0x14: 0x06, 0x38: 0x30, 0x3D: 0x12,
              0x5F: max(num_cpus - 1, 0) & 0xFF}
    for base, value, width in ((0x15, 640, 2), (0x17, extended, 2), (0x30, extended, 2),
                               (0x34, above_16m, 2), (0x5B, above_4g, 3)):
        for i in range(width):
            layout[base + i] = (value >> (8 * i)) & 0xFF
    return layout


class Cmos(ByteRegisters):
    """MC146818A RTC + 128 bytes of CMOS RAM; two ports (index, data)."""

    span = 2

    def __init__(self, clock_ns: ClockNs, *, start_time: float | None = None,
                 ram: dict[int, int] | None = None, irq: IrqLine | None = None,
                 timers: TimerService | None = None) -> None:
        self.clock_ns = clock_ns
        self.irq = irq
        self.timers = timers
        self.on_alarm: Callable[[], None] | None = None  # the ACPI wake (RTC_STS)
        self._flags = 0  # C flags set by the timer callbacks, not yet read
        self._irq_level = False
        self._periodic: TimerHandle | None = None
        self._second: TimerHandle | None = None
        self._last_c_ns = clock_ns()
        self.index = 0
        self.nmi_disabled = False
        self.ram = bytearray(CMOS_SIZE)
        for addr, value in (ram or {}).items():
            self.ram[addr & 0x7F] = value & 0xFF
        self.ram[REG_A], self.ram[REG_B], self.ram[REG_D] = RESET_A, RESET_B, D_VRT
        start = time.time() if start_time is None else start_time
        self.ram[CENTURY_PS2] = to_bcd(time.gmtime(start).tm_year // 100)  # static copy
        # Guest time (s) = epoch + clock_ns()/1e9; the epoch moves when the guest sets the clock.
        self._epoch_ns = int(start * 1e9) - clock_ns()
        self._frozen: dict[int, int] | None = None  # time registers while B.SET = 1
        self._last_c_second = self._now_ns() // 1_000_000_000

    # -- time ---------------------------------------------------------------------------

    def _now_ns(self) -> int:
        return self._epoch_ns + self.clock_ns()

    def _encode(self, value: int) -> int:
        return value if self.ram[REG_B] & B_DM_BINARY else to_bcd(value)

    def _decode(self, value: int) -> int:
        return value if self.ram[REG_B] & B_DM_BINARY else from_bcd(value)

    def _time_registers(self, seconds: int) -> dict[int, int]:
        t = time.gmtime(seconds)
        hour = t.tm_hour
        if not self.ram[REG_B] & B_24H:  # 12-hour: 1..12, bit 7 = PM (Table 3)
            hour = self._encode(hour % 12 or 12) | (0x80 if t.tm_hour >= 12 else 0)
        else:
            hour = self._encode(hour)
        return {SECONDS: self._encode(t.tm_sec), MINUTES: self._encode(t.tm_min),
                HOURS: hour, DAY_OF_WEEK: self._encode((t.tm_wday + 1) % 7 + 1),
                DAY_OF_MONTH: self._encode(t.tm_mday), MONTH: self._encode(t.tm_mon),
                YEAR: self._encode(t.tm_year % 100), CENTURY: to_bcd(t.tm_year // 100)}

    def _load_time(self, regs: dict[int, int]) -> None:
        """Restart the clock from guest-written registers; an invalid date is ignored."""
        hour = self._decode(regs[HOURS] & 0x7F)  # bit 7 is the PM flag, unused in 24 h mode
        if not self.ram[REG_B] & B_24H:
            hour = hour % 12 + (12 if regs[HOURS] & 0x80 else 0)
        year = from_bcd(regs[CENTURY]) * 100 + self._decode(regs[YEAR])
        fields = (year, self._decode(regs[MONTH]), self._decode(regs[DAY_OF_MONTH]), hour,
                  self._decode(regs[MINUTES]), self._decode(regs[SECONDS]))
        y, mo, d, h, mi, s = fields
        if not (MIN_YEAR <= y <= MAX_YEAR and 1 <= mo <= 12
                and 1 <= d <= calendar.monthrange(y, mo)[1] and h < 24 and mi < 60 and s < 60):
            return
        seconds = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
        self._epoch_ns = seconds * 1_000_000_000 - self.clock_ns()
        self._arm_second()  # the seconds tick at new instants

    def _current_time_registers(self) -> dict[int, int]:
        if self._frozen is not None:
            return self._frozen
        return self._time_registers(self._now_ns() // 1_000_000_000)

    # -- ports --------------------------------------------------------------------------

    def read_byte(self, offset: int) -> int:
        if offset == 0:
            return 0xFF  # the index register is write only
        return self._read_register(self.index)

    def write_byte(self, offset: int, value: int) -> None:
        if offset == 0:
            self.index = value & 0x7F
            self.nmi_disabled = bool(value & 0x80)
        else:
            self._write_register(self.index, value)

    def _read_register(self, index: int) -> int:
        if index in TIME_FIELDS:
            return self._current_time_registers()[index]
        if index == REG_A:
            ns_into_second = self._now_ns() % 1_000_000_000
            uip = self._frozen is None and ns_into_second >= 1_000_000_000 - UIP_WINDOW_NS
            return (self.ram[REG_A] & ~A_UIP) | (A_UIP if uip else 0)
        if index == REG_C:
            return self._read_c()
        return self.ram[index]

    def _write_register(self, index: int, value: int) -> None:
        if index in TIME_FIELDS:
            regs = dict(self._current_time_registers())
            regs[index] = value
            if self._frozen is not None:
                self._frozen = regs
            else:
                self._load_time(regs)
        elif index == REG_A:
            self.ram[REG_A] = value & ~A_UIP
            self._arm_periodic()
        elif index == REG_B:
            self._write_b(value)
        elif index in (REG_C, REG_D):
            pass  # read only
        else:
            self.ram[index] = value

    def _write_b(self, value: int) -> None:
        if value & B_SET:
            value &= ~B_UIE
            if self._frozen is None:
                self._frozen = self._time_registers(self._now_ns() // 1_000_000_000)
            self.ram[REG_B] = value
        else:
            self.ram[REG_B] = value
            if self._frozen is not None:
                frozen, self._frozen = self._frozen, None
                self._load_time(frozen)
        self._arm_periodic()
        self._arm_second()
        self._update_irq()

    # -- interrupts (IRQ 8) ---------------------------------------------------------------

    def _read_c(self) -> int:
        now = self.clock_ns()
        second = self._now_ns() // SECOND_NS
        flags = self._flags
        if self._frozen is None and second > self._last_c_second:
            flags |= C_UF
        period = periodic_ns(self.ram[REG_A])
        if period is not None and self.ram[REG_B] & B_PIE \
                and now // period > self._last_c_ns // period:
            flags |= C_PF
        self._last_c_second, self._last_c_ns = second, now
        self._flags = 0
        if flags & self._enabled():
            flags |= C_IRQF
        self._update_irq()
        return flags

    def _enabled(self) -> int:
        """The C flags whose interrupt register B enables (PIE, AIE, UIE have the bit
        positions of PF, AF, UF)."""
        return self.ram[REG_B] & (B_PIE | B_AIE | B_UIE)

    def _update_irq(self) -> None:
        level = bool(self._flags & self._enabled())
        if level != self._irq_level:
            self._irq_level = level
            if self.irq is not None:
                self.irq.set_level(level)

    def _arm_periodic(self) -> None:
        if self._periodic is not None:
            self._periodic.cancel()
            self._periodic = None
        period = periodic_ns(self.ram[REG_A])
        if self.timers is None or period is None or not self.ram[REG_B] & B_PIE:
            return
        now = self.clock_ns()
        self._periodic = self.timers.at((now // period + 1) * period, self._on_periodic)

    def _on_periodic(self) -> None:
        self._periodic = None
        self._flags |= C_PF
        self._last_c_ns = self.clock_ns()  # the flag is set now; C reads report it once
        self._update_irq()
        self._arm_periodic()

    def _arm_second(self) -> None:
        if self._second is not None:
            self._second.cancel()
            self._second = None
        if self.timers is None or self._frozen is not None \
                or not self.ram[REG_B] & (B_AIE | B_UIE):
            return
        into = self._now_ns() % SECOND_NS
        self._second = self.timers.at(self.clock_ns() + SECOND_NS - into, self._on_second)

    def _on_second(self) -> None:
        """The update cycle ended: UF, and AF when the new time matches the alarm."""
        self._second = None
        self._flags |= C_UF
        self._last_c_second = self._now_ns() // SECOND_NS
        now = self._current_time_registers()
        if all(self.ram[alarm] & ALARM_ANY == ALARM_ANY or self.ram[alarm] == now[field]
               for alarm, field in ((SECONDS_ALARM, SECONDS), (MINUTES_ALARM, MINUTES),
                                    (HOURS_ALARM, HOURS))):
            self._flags |= C_AF
            if self.on_alarm is not None:
                self.on_alarm()
        self._update_irq()
        self._arm_second()
