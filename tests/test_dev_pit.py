"""8254 PIT: behaviour from the Intel 8254 datasheet (sections cited per test), on a guest clock
that moves only when the test says so; and the same port sequences compared with QEMU 7.2's
i8254 under ``-icount shift=0`` (deterministic guest time)."""

from __future__ import annotations

import pytest

from dev_platform import FakeTimers, run_both
from dev_probe import inp, out
from x86vm.devices.i8254 import MIN_EVENT_NS, PIT_HZ, Pit8254
from x86vm.machine.bus import PortBus
from x86vm.machine.irq import NullIrqLine

TICK_NS = 1e9 / PIT_HZ


def ns(ticks: float) -> int:
    return int(ticks * TICK_NS) + 1


@pytest.fixture
def rig():
    timers = FakeTimers()
    line = NullIrqLine()
    pit = Pit8254(timers, line)
    assert line.level  # OUT 0 is high until counter 0 is programmed
    line.edges = 0
    bus = PortBus()
    pit.register(bus)
    return timers, line, pit, bus


def program(bus, counter, mode, count, *, bcd=False):
    bus.write(0x43, 1, counter << 6 | 0x30 | mode << 1 | int(bcd))
    bus.write(0x40 + counter, 1, count & 0xFF)
    bus.write(0x40 + counter, 1, count >> 8)


def latch_read(bus, counter):
    bus.write(0x43, 1, counter << 6)  # counter latch command
    return bus.read(0x40 + counter, 1) | bus.read(0x40 + counter, 1) << 8


def status(bus, counter):
    bus.write(0x43, 1, 0xE0 | 2 << counter)  # read-back: status only
    return bus.read(0x40 + counter, 1)


def test_mode0_interrupt_on_terminal_count(rig):
    """Mode 0: OUT low after the control word, high N counts after the count is written;
    the counter keeps counting down (wrapping) after terminal count."""
    timers, line, pit, bus = rig
    program(bus, 0, 0, 1000)
    assert not line.level and latch_read(bus, 0) == 1000
    timers.advance(ns(500))
    assert latch_read(bus, 0) == 500 and not line.level
    timers.advance(ns(500))
    assert line.level and line.edges == 1
    timers.advance(ns(100))
    assert latch_read(bus, 0) == (1000 - 1100) % 0x10000


def test_mode2_rate_generator_edges(rig):
    """Mode 2: a rising OUT edge every N counts; the count runs N..1."""
    timers, line, pit, bus = rig
    program(bus, 0, 2, 1193)  # ~1 kHz
    assert line.level and latch_read(bus, 0) == 1193
    timers.advance(10_000_000)  # 10 ms
    assert line.edges == 10
    values = {latch_read(bus, 0)}
    for _ in range(50):
        timers.advance(ns(97))
        values.add(latch_read(bus, 0))
    assert min(values) >= 1 and max(values) <= 1193


def test_mode3_square_wave_on_port61(rig):
    """Mode 3: OUT high for ceil(N/2) and low for floor(N/2) counts; counter 2's OUT is port
    0x61 bit 5 and its GATE bit 0 (low stops counting and forces OUT high)."""
    timers, line, pit, bus = rig
    bus.write(0x61, 1, 0x01)
    program(bus, 2, 3, 100)
    assert bus.read(0x61, 1) & 0x21 == 0x21
    timers.advance(ns(60))
    assert bus.read(0x61, 1) & 0x20 == 0
    timers.advance(ns(50))
    assert bus.read(0x61, 1) & 0x20
    value = latch_read(bus, 2)
    assert value % 2 == 0  # decrements by two
    bus.write(0x61, 1, 0x00)
    frozen = latch_read(bus, 2)
    timers.advance(ns(30))
    assert latch_read(bus, 2) == frozen and bus.read(0x61, 1) & 0x20


def test_mode0_gate_low_pauses(rig):
    """Mode 0: GATE = 0 disables counting."""
    timers, line, pit, bus = rig
    bus.write(0x61, 1, 0x01)
    program(bus, 2, 0, 500)
    timers.advance(ns(100))
    bus.write(0x61, 1, 0x00)
    paused = latch_read(bus, 2)
    timers.advance(ns(1000))
    assert latch_read(bus, 2) == paused and not bus.read(0x61, 1) & 0x20
    bus.write(0x61, 1, 0x01)
    timers.advance(ns(paused + 1))
    assert bus.read(0x61, 1) & 0x20


def test_mode1_one_shot_needs_gate_edge(rig):
    """Mode 1: OUT high until a GATE rising edge, then low for N counts."""
    timers, line, pit, bus = rig
    program(bus, 2, 1, 200)
    timers.advance(ns(500))
    assert bus.read(0x61, 1) & 0x20 and status(bus, 2) & 0x40  # null count: not loaded
    bus.write(0x61, 1, 0x01)
    assert not bus.read(0x61, 1) & 0x20 and not status(bus, 2) & 0x40
    timers.advance(ns(200))
    assert bus.read(0x61, 1) & 0x20


@pytest.mark.parametrize("mode", [4, 5])
def test_strobe_modes(rig, mode):
    """Modes 4/5: OUT high, low for one count at terminal count (5: after a GATE edge)."""
    timers, line, pit, bus = rig
    bus.write(0x61, 1, 0x01 if mode == 4 else 0x00)
    program(bus, 2, mode, 50)
    if mode == 5:
        timers.advance(ns(100))
        bus.write(0x61, 1, 0x01)
    timers.advance(ns(49))
    assert bus.read(0x61, 1) & 0x20
    timers.advance(ns(1))
    assert not bus.read(0x61, 1) & 0x20
    timers.advance(ns(1))
    assert bus.read(0x61, 1) & 0x20


def test_bcd_counting(rig):
    """Control word bit 0: four BCD decades; 0 means 10^4."""
    timers, line, pit, bus = rig
    program(bus, 2, 0, 0x1234, bcd=True)
    bus.write(0x61, 1, 0x01)
    timers.advance(ns(34))
    assert latch_read(bus, 2) == 0x1200


def test_latch_holds_until_read(rig):
    """Counter latch command: the first latch holds until read; later latches are ignored."""
    timers, line, pit, bus = rig
    program(bus, 0, 2, 0x4000)
    bus.write(0x43, 1, 0x00)
    timers.advance(ns(0x100))
    bus.write(0x43, 1, 0x00)
    assert bus.read(0x40, 1) | bus.read(0x40, 1) << 8 == 0x4000
    assert latch_read(bus, 0) == 0x4000 - 0x100


def test_read_back_status_then_count(rig):
    """Read-back command and status byte: status first, then the latched count."""
    timers, line, pit, bus = rig
    program(bus, 1, 2, 0x1234)
    bus.write(0x43, 1, 0xC4)  # count and status of counter 1
    assert [bus.read(0x41, 1) for _ in range(3)] == [0x80 | 0x34, 0x34, 0x12]


def test_lsb_msb_access_modes(rig):
    """RW = 01/10: one byte; 11: LSB then MSB, for writes and live reads alike."""
    timers, line, pit, bus = rig
    bus.write(0x43, 1, 0x90)
    bus.write(0x42, 1, 0x77)
    assert latch_read(bus, 2) & 0xFF == 0x77
    bus.write(0x43, 1, 0xA0)
    bus.write(0x42, 1, 0x12)
    bus.write(0x43, 1, 0x80)
    assert bus.read(0x42, 1) == 0x12
    program(bus, 2, 0, 0xABCD)
    assert (bus.read(0x42, 1), bus.read(0x42, 1)) == (0xCD, 0xAB)


def test_null_count_until_loaded(rig):
    """Status bit 6 (NULL COUNT): set by the control word, cleared once the count is loaded."""
    timers, line, pit, bus = rig
    bus.write(0x43, 1, 0xB4)
    assert status(bus, 2) == 0x40 | 0x80 | 0x34
    bus.write(0x42, 1, 0x10)
    assert status(bus, 2) & 0x40
    bus.write(0x42, 1, 0x00)
    assert status(bus, 2) & 0x40 == 0


def test_count_one_storm_is_bounded(rig):
    """Mode 2 with N = 1 (the fastest rate): callbacks stay at one per MIN_EVENT_NS and the
    interrupt line keeps seeing rising edges."""
    timers, line, pit, bus = rig
    program(bus, 0, 2, 1)
    ran = timers.advance(10_000_000)
    assert ran <= 10_000_000 // MIN_EVENT_NS + 1
    assert line.edges >= ran // 2


def test_mode2_edges_on_time(rig):
    """Mode 2: the rising edge comes at N counts exactly (the one-count low pulse before it is
    handled at its end), and programming from the idle-high OUT is no edge."""
    timers, line, pit, bus = rig
    program(bus, 0, 2, 1193)
    edge_ns = -(-1193 * 1_000_000_000 // PIT_HZ)
    timers.advance(edge_ns - 1)
    assert line.edges == 0
    timers.advance(1)
    assert line.edges == 1 and line.level


def test_reprogramming_cancels_pending_event(rig):
    timers, line, pit, bus = rig
    program(bus, 0, 0, 1000)
    program(bus, 0, 0, 0xFFFF)
    timers.advance(ns(2000))
    assert not line.level and line.edges == 0


# -- QEMU 7.2, byte for byte ---------------------------------------------------------------
# QEMU's OUT differs from the datasheet in modes 1, 2, 4, 5 (its mode 2/4/5 OUT is high only
# at the reload/terminal count, mode 1 high while counting; 6 and 7 read low) and it has no
# NULL COUNT bit: status bytes are compared without bit 6, and without bit 7 in those modes.
# Mode 3 with an odd count reads N-1 right after loading here (the datasheet loads N-1), N in
# QEMU; the probes use even counts.

def rb(counter, count=True, stat=True):
    return out(0x43, 0xC0 | (0 if count else 0x20) | (0 if stat else 0x10) | 2 << counter)


def status_in(port, mode):
    return inp(port, mask=0x3F if mode in (1, 2, 4, 5, 6, 7) else 0xBF)


def modes(gate: int, counter: int = 2) -> list:
    port = 0x40 + counter
    ops = [out(0x61, gate)]
    for m in range(8):
        ops += [out(0x43, counter << 6 | 0x30 | m << 1), out(port, 0x00), out(port, 0x40),
                rb(counter), status_in(port, m), inp(port), inp(port), inp(0x61, mask=0x0F)]
    return ops


QEMU_ICOUNT = ("-device", "pc-testdev", "-icount", "shift=0")
SCENARIOS = {
    "modes_gate_low": modes(0),
    "modes_gate_high": modes(1),
    "modes_counter0": modes(1, counter=0),
    "access_modes": [out(0x43, 0x90), out(0x42, 0x34), rb(2), inp(0x42, mask=0xBF), inp(0x42),
                     out(0x43, 0xA0), out(0x42, 0x12), rb(2), inp(0x42, mask=0xBF), inp(0x42),
                     inp(0x42), out(0x43, 0x34), out(0x40, 0x34), out(0x40, 0x12), inp(0x40),
                     inp(0x40), out(0x43, 0x24), out(0x40, 0x56), inp(0x40), inp(0x40),
                     out(0x43, 0x14), out(0x40, 0x78), inp(0x40), out(0x43, 0x00),
                     out(0x43, 0x34), inp(0x40), inp(0x40)],
    "bcd": [out(0x43, 0xB1), out(0x42, 0x99), out(0x42, 0x99), rb(2), inp(0x42, mask=0xBF),
            inp(0x42), inp(0x42), out(0x43, 0xB5), out(0x42, 0x00), out(0x42, 0x00),
            out(0x43, 0x80), inp(0x42), inp(0x42)],
    "latch_holds": [out(0x43, 0xB4), out(0x42, 0x00), out(0x42, 0x10), out(0x43, 0x80),
                    out(0x42, 0x00), out(0x42, 0x20), out(0x43, 0x80), inp(0x42), inp(0x42),
                    inp(0x42), inp(0x42)],
    "read_back_all": [out(0x43, 0x34), out(0x40, 0x11), out(0x40, 0x22), out(0x43, 0x76),
                      out(0x41, 0x34), out(0x41, 0x44), out(0x43, 0xB0), out(0x42, 0x55),
                      out(0x42, 0x66), out(0x43, 0xCE)]
    + [x for p, m in ((0x40, 2), (0x41, 3), (0x42, 0)) for x in (status_in(p, m), inp(p), inp(p))],
    "port61": [out(0x61, 0x03), inp(0x61, mask=0xEF), out(0x61, 0xFC), inp(0x61, mask=0xEF),
               out(0x61, 0x02), inp(0x61, mask=0xEF)],
}


@pytest.mark.oracle("qemu", "binutils")
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_pit_matches_qemu(tmp_path, monkeypatch, name):
    qemu, ours = run_both(SCENARIOS[name], tmp_path, monkeypatch, extra=QEMU_ICOUNT)
    assert ours == qemu


# -- counting over guest time, QEMU 7.2 under -icount shift=0 (1 ns per instruction) ---------
# A DEC/JNZ loop lets a known amount of guest time pass; delays end mid-count so the few
# instructions of the probe itself cannot move a reading across a count boundary.

from dev_platform import delay, run_platform_on_chipset, run_platform_under_qemu  # noqa: E402


def ticks_ns(counts: float) -> int:
    return int(counts * 1e9 / PIT_HZ)


def prog(counter, mode, count):
    return [out(0x43, counter << 6 | 0x30 | mode << 1), out(0x40 + counter, count & 0xFF),
            out(0x40 + counter, count >> 8)]


def latch(counter):
    return [out(0x43, counter << 6), inp(0x40 + counter), inp(0x40 + counter)]


OUT2 = inp(0x61, mask=0x2F)
TIMED_SCENARIOS = {
    "mode0_counts_down": [out(0x61, 1)] + prog(2, 0, 0x8000) + [delay(ticks_ns(100.5))]
    + latch(2) + [delay(ticks_ns(1000.25))] + latch(2),
    "mode0_out_at_terminal_count": [out(0x61, 1)] + prog(2, 0, 100)
    + [OUT2, delay(ticks_ns(99.5)), OUT2, delay(ticks_ns(1)), OUT2],
    "mode2_reloads": [out(0x61, 1)] + prog(2, 2, 1000) + [delay(ticks_ns(2345.5))] + latch(2),
    "mode3_square_wave": [out(0x61, 1)] + prog(2, 3, 1000) + [delay(ticks_ns(2345.5))]
    + latch(2) + [OUT2, delay(ticks_ns(300)), OUT2, delay(ticks_ns(300)), OUT2],
}
# Not compared: BCD counting over time. QEMU counts a BCD-mode count as binary (0x5000 loaded,
# 1234 counts later it reads 0x4B2E); the datasheet's four decades read 0x3766.


@pytest.mark.skipif(not (QEMU and TOOLS), reason="needs qemu-system-x86_64 and GNU as/ld")
@pytest.mark.parametrize("name", sorted(TIMED_SCENARIOS))
def test_pit_counting_matches_qemu(tmp_path, name):
    ops = TIMED_SCENARIOS[name]
    assert run_platform_on_chipset(ops).hex(" ") == run_platform_under_qemu(ops, tmp_path).hex(" ")
