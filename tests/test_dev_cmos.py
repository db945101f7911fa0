"""MC146818A RTC/CMOS behaviour (datasheet Table 3 data modes, register A-D descriptions).
The reset-time byte image is compared against QEMU in test_dev_qemu.py."""

from __future__ import annotations

import calendar

import pytest

from x86vm.devices.cmos import Cmos, pc_cmos_layout

T0 = calendar.timegm((1999, 12, 31, 23, 59, 58, 0, 0, 0))  # a Friday
SECOND = 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.ns = 5 * SECOND  # an arbitrary non-zero guest clock at power-on

    def __call__(self) -> int:
        return self.ns


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def rtc(clock):
    return Cmos(clock, start_time=T0)


def reg(rtc, index):
    rtc.write(0, 1, index)
    return rtc.read(1, 1)


def setreg(rtc, index, value):
    rtc.write(0, 1, index)
    rtc.write(1, 1, value)


def clock_regs(rtc):
    return [reg(rtc, i) for i in (0, 2, 4, 6, 7, 8, 9, 0x32)]


def test_bcd_24h_time_and_rollover_to_the_next_century(rtc, clock):
    assert clock_regs(rtc) == [0x58, 0x59, 0x23, 0x06, 0x31, 0x12, 0x99, 0x19]
    clock.ns += 2 * SECOND
    assert clock_regs(rtc) == [0x00, 0x00, 0x00, 0x07, 0x01, 0x01, 0x00, 0x20]


def test_binary_and_12_hour_modes(rtc):
    setreg(rtc, 0x0B, 0x06)  # DM = binary, 24 h
    assert clock_regs(rtc)[:3] == [58, 59, 23]
    setreg(rtc, 0x0B, 0x04)  # binary, 12 h: 11 PM
    assert reg(rtc, 4) == 0x80 | 11
    setreg(rtc, 0x0B, 0x00)  # BCD, 12 h
    assert reg(rtc, 4) == 0x91


def test_set_freezes_and_loads_time(rtc, clock):
    setreg(rtc, 0x0B, 0x82)
    for index, value in ((0, 0x30), (2, 0x15), (4, 0x08), (7, 0x04), (8, 0x07), (9, 0x21),
                         (0x32, 0x20)):
        setreg(rtc, index, value)
    clock.ns += 10 * SECOND
    assert reg(rtc, 0) == 0x30  # frozen while SET
    assert reg(rtc, 0x0A) & 0x80 == 0  # and no update in progress
    setreg(rtc, 0x0B, 0x02)
    clock.ns += 3 * SECOND
    assert clock_regs(rtc) == [0x33, 0x15, 0x08, 0x01, 0x04, 0x07, 0x21, 0x20]  # a Sunday


def test_direct_write_while_running_and_invalid_date_ignored(rtc):
    setreg(rtc, 2, 0x10)  # minutes, clock running
    assert reg(rtc, 2) == 0x10 and reg(rtc, 4) == 0x23
    setreg(rtc, 8, 0x13)  # month 13: not a date, the clock keeps its time
    assert reg(rtc, 8) == 0x12
    setreg(rtc, 0x32, 0x9A)  # century "9A" = 100 (found by the fuzzer): ignored too
    assert reg(rtc, 0x32) == 0x19


def test_set_clears_uie_and_status_registers_are_protected(rtc):
    setreg(rtc, 0x0B, 0x92)
    assert reg(rtc, 0x0B) == 0x82
    setreg(rtc, 0x0D, 0x00)
    assert reg(rtc, 0x0D) == 0x80  # VRT
    setreg(rtc, 0x0A, 0xA6)
    assert reg(rtc, 0x0A) == 0x26  # UIP is read only


def test_uip_window_before_each_second(rtc, clock):
    clock.ns = 7 * SECOND + SECOND - 200_000  # 200 µs before the tick
    assert reg(rtc, 0x0A) & 0x80
    clock.ns = 7 * SECOND + SECOND - 300_000
    assert reg(rtc, 0x0A) & 0x80 == 0


def test_register_c_update_flag(rtc, clock):
    assert reg(rtc, 0x0C) == 0x00
    clock.ns += SECOND
    setreg(rtc, 0x0B, 0x12)  # UIE
    assert reg(rtc, 0x0C) == 0x90  # IRQF | UF
    assert reg(rtc, 0x0C) == 0x00  # cleared by reading


def test_index_masks_to_7_bits_and_records_nmi_mask(rtc):
    rtc.write(0, 1, 0xC0)  # NMI disabled, index 0x40
    rtc.write(1, 1, 0xA5)
    assert rtc.nmi_disabled and rtc.ram[0x40] == 0xA5
    rtc.write(0, 1, 0x40)
    assert not rtc.nmi_disabled and rtc.read(1, 1) == 0xA5
    assert rtc.read(0, 1) == 0xFF  # index register is write only
    rtc.write(0, 2, 0x5540)  # outw: index 0x40, then data 0x55
    assert rtc.ram[0x40] == 0x55
    assert rtc.read(1, 4) == 0xFFFFFF55  # bytes past the chip float


def test_memory_size_layout():
    layout = pc_cmos_layout(3 << 30, 5 << 30, num_cpus=4)
    def word(a, layout=layout):
        return layout[a] | layout[a + 1] << 8

    assert word(0x15) == 640
    assert word(0x17) == word(0x30) == 0xFFFF  # capped
    assert word(0x34) == ((3 << 30) - (16 << 20)) // 65536
    assert layout[0x5B] | layout[0x5C] << 8 | layout[0x5D] << 16 == (5 << 30) // 65536
    assert layout[0x5F] == 3
    small = pc_cmos_layout(8 << 20, 0)
    assert word(0x17, small) == 7 * 1024 and word(0x34, small) == 0


MIDNIGHT = calendar.timegm((2021, 3, 4, 0, 0, 30, 0, 0, 0))
NOON = calendar.timegm((2021, 3, 4, 12, 0, 30, 0, 0, 0))


@pytest.mark.parametrize("start, reg_b, hours", [
    (MIDNIGHT, 0x00, 0x12), (NOON, 0x00, 0x92),     # BCD: 12 AM = 12, 12 PM = 0x80 | 12
    (MIDNIGHT, 0x04, 0x0C), (NOON, 0x04, 0x8C),     # binary: the same as 0x0C, 0x80 | 0x0C
    (MIDNIGHT, 0x02, 0x00), (NOON, 0x02, 0x12),     # BCD, 24-hour: 00 and 12
])
def test_12_hour_mode_at_midnight_and_noon(clock, start, reg_b, hours):
    """MC146818A Table 3 (Time, Calendar and Alarm Data Modes): hours in 12-hour mode run
    1-12 with bit 7 set for PM -- midnight is 12 AM, noon is 12 PM; there is no hour 0."""
    rtc = Cmos(clock, start_time=start)
    setreg(rtc, 0x0B, reg_b)
    assert reg(rtc, 4) == hours


@pytest.mark.parametrize("written, an_hour_later", [(0x12, 0x01), (0x92, 0x81), (0x11, 0x92),
                                                   (0x91, 0x12), (0x01, 0x02), (0x81, 0x82)])
def test_12_hour_writes_load_the_right_hour(rtc, clock, written, an_hour_later):
    """The same table, written: with SET in BCD 12-hour mode, 0x12 is midnight and 0x92 noon,
    so an hour later the clock reads 1 AM / 1 PM; 11 AM and 11 PM roll to 12 PM and 12 AM."""
    setreg(rtc, 0x0B, 0x80)                      # SET, BCD, 12-hour
    setreg(rtc, 4, written)
    setreg(rtc, 0x0B, 0x00)                      # run, BCD, 12-hour
    assert reg(rtc, 4) == written
    clock.ns += 3600 * SECOND
    assert reg(rtc, 4) == an_hour_later


class Timers:
    """A TimerService over the test clock: ``advance`` runs what came due, in order."""

    def __init__(self, clock: Clock) -> None:
        self.clock, self.armed = clock, []

    def clock_ns(self) -> int:
        return self.clock.ns

    def at(self, deadline, callback):
        entry = [deadline, callback, False]
        self.armed.append(entry)

        class Handle:
            def cancel(self_inner):
                entry[2] = True
        return Handle()

    def advance(self, ns: int) -> None:
        end = self.clock.ns + ns
        while True:
            due = sorted((e for e in self.armed if not e[2] and e[0] <= end), key=lambda e: e[0])
            if not due:
                break
            entry = due[0]
            entry[2] = True
            self.clock.ns = max(self.clock.ns, entry[0])
            entry[1]()
        self.clock.ns = end
        self.armed = [e for e in self.armed if not e[2]]


class Line:
    def __init__(self) -> None:
        self.level, self.rises = False, 0

    def set_level(self, level: bool) -> None:
        self.rises += level and not self.level
        self.level = level


@pytest.fixture
def timed(clock):
    timers, line = Timers(clock), Line()
    return Cmos(clock, start_time=T0, irq=line, timers=timers), timers, line


@pytest.mark.parametrize("rate,period_ns", [(1, 3_906_250), (2, 7_812_500), (3, 122_070),
                                            (6, 976_562), (15, 500_000_000)])
def test_periodic_rate_table(rate, period_ns):
    """Datasheet Table 5 (32.768 kHz time base): the periods, truncated to ns."""
    from x86vm.devices.cmos import periodic_ns
    assert periodic_ns(0x20 | rate) == period_ns
    assert periodic_ns(0x20) is None and periodic_ns(0x60 | rate) is None  # off / divider reset


def test_periodic_interrupt_on_guest_time(timed):
    rtc, timers, line = timed
    setreg(rtc, 0x0A, 0x2F)               # 500 ms
    setreg(rtc, 0x0B, 0x42)               # PIE, 24 h
    assert not line.level and len(timers.armed) == 1
    timers.advance(499_000_000)
    assert not line.level
    timers.advance(2_000_000)
    assert line.level and line.rises == 1
    assert reg(rtc, 0x0C) == 0xC0         # IRQF | PF
    assert not line.level and reg(rtc, 0x0C) == 0x00
    timers.advance(2 * SECOND)            # four periods unread: one flag, the line stays up
    assert line.level and line.rises == 2
    setreg(rtc, 0x0B, 0x02)               # PIE off: the callback is withdrawn, the line falls
    assert not line.level and all(e[2] for e in timers.armed)


def test_update_and_alarm_interrupts(timed, clock):
    rtc, timers, line = timed             # the RTC reads 23:59:58
    setreg(rtc, 0x01, 0x59)               # alarm 23:59:59 (BCD)
    setreg(rtc, 0x03, 0x59)
    setreg(rtc, 0x05, 0x23)
    setreg(rtc, 0x0B, 0x22)               # AIE only
    timers.advance(SECOND)                # 23:59:59: update ended, the alarm matches
    assert line.level and reg(rtc, 0x0C) == 0xB0     # IRQF | AF | UF
    timers.advance(SECOND)                # 00:00:00: no match, UF only (not enabled)
    assert not line.level and reg(rtc, 0x0C) == 0x10
    setreg(rtc, 0x01, 0xC0)               # "don't care" seconds: every second of 00:00
    setreg(rtc, 0x03, 0x00)
    setreg(rtc, 0x05, 0x00)
    timers.advance(SECOND)
    assert line.level and reg(rtc, 0x0C) == 0xB0
    setreg(rtc, 0x0B, 0x12)               # UIE only
    timers.advance(SECOND)
    assert line.level and reg(rtc, 0x0C) & 0x90 == 0x90


def test_set_stops_the_update_interrupt(timed):
    rtc, timers, line = timed
    setreg(rtc, 0x0B, 0x12)
    setreg(rtc, 0x0B, 0x92)               # SET clears UIE and freezes the clock
    timers.advance(3 * SECOND)
    assert not line.level and reg(rtc, 0x0C) == 0x00
