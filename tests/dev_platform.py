"""Probes for the interrupt controllers and timers, run under QEMU 7.2 (``-device pc-testdev``,
whose port 0x2000 + n drives ISA IRQ n) and on x86vm's models, compared byte for byte.

pc-testdev's byte window 0xE8-0xEB covers port 0xE9 (QEMU lets it win over isa-debugcon), so
these probes print through a debug console at 0x402 instead.
"""

from __future__ import annotations

from pathlib import Path

import dev_probe
from dev_probe import Op, inp, out, run_on_bus
from x86vm.devices.i8254 import Pit8254
from x86vm.devices.i8259 import Pic8259Pair
from x86vm.devices.pc_testdev import PcTestDev
from x86vm.machine.bus import PortBus

PROBE_DEBUGCON = 0x402
MASTER, SLAVE = 0x20, 0xA0

# Linux's initialisation (arch/x86/kernel/i8259.c init_8259A): vectors 0x20/0x28, cascade on
# IR2, 8086 mode, all unmasked but IRQ 0: QEMU's own PIT drives IRQ 0 from reset, at times we
# cannot control, so probes keep it masked and do not compare its IRR bit.
LINUX_INIT = [out(0x20, 0x11), out(0xA0, 0x11), out(0x21, 0x20), out(0xA1, 0x28),
              out(0x21, 0x04), out(0xA1, 0x02), out(0x21, 0x01), out(0xA1, 0x01),
              out(0x21, 0x01), out(0xA1, 0x00)]


def irq(n: int, level: int) -> Op:
    """Drive ISA IRQ ``n`` through pc-testdev's IRQ port."""
    return out(0x2000 + n, level)


def pic_regs() -> list[Op]:
    """IRR (bit 0 masked), ISR, IMR of the master, then of the slave (OCW3 RR/RIS)."""
    ops: list[Op] = []
    for base in (MASTER, SLAVE):
        ops += [inp(base, mask=0xFE if base == MASTER else None), out(base, 0x0B), inp(base),
                out(base, 0x0A), inp(base + 1)]
    return ops


def poll(base: int = MASTER) -> list[Op]:
    """OCW3 poll command and the poll word."""
    return [out(base, 0x0C), inp(base)]


class FakeTimers:
    """A TimerService whose clock only moves when told (the probes run in zero time)."""

    def __init__(self, now: int = 0) -> None:
        self.now = now
        self.pending: list[tuple[int, int, object]] = []
        self.seq = 0

    def clock_ns(self) -> int:
        return self.now

    def at(self, deadline_ns, callback):
        self.seq += 1
        entry = [deadline_ns, self.seq, callback, False]
        self.pending.append(entry)
        return _Handle(entry)

    def advance(self, ns: int, *, limit: int = 1_000_000) -> int:
        """Move the clock forward, running due callbacks in deadline order; returns how many
        ran (``limit`` guards a runaway model)."""
        target = self.now + ns
        ran = 0
        while True:
            live = [e for e in self.pending if not e[3]]
            self.pending = live
            due = [e for e in live if e[0] <= target]
            if not due:
                break
            entry = min(due, key=lambda e: (e[0], e[1]))
            self.pending.remove(entry)
            self.now = max(self.now, entry[0])
            entry[2]()
            ran += 1
            if ran >= limit:
                raise RuntimeError("timer callbacks do not stop")
        self.now = target
        return ran


class _Handle:
    def __init__(self, entry) -> None:
        self.entry = entry

    def cancel(self) -> None:
        self.entry[3] = True


def platform_bus(timers: FakeTimers | None = None) -> tuple[PortBus, Pic8259Pair, Pit8254]:
    """PIC pair, PIT (IRQ 0 into the PIC) and pc-testdev on a fresh port bus."""
    bus = PortBus()
    pic = Pic8259Pair()
    pic.register(bus)
    pit = Pit8254(timers or FakeTimers(), pic.irq_line(0))
    pit.register(bus)
    testdev = PcTestDev([pic.irq_line(i) if i < 16 else None for i in range(24)])
    testdev.register(bus)
    return bus, pic, pit


def run_both(ops: list[Op], workdir: Path, monkeypatch,
             extra: tuple[str, ...] = ("-device", "pc-testdev")) -> tuple[str, str]:
    """(QEMU's bytes, x86vm's bytes) as hex strings for the same probe."""
    monkeypatch.setattr(dev_probe, "DEBUGCON", PROBE_DEBUGCON)
    qemu, _ = dev_probe.run_under_qemu(ops, workdir, extra=extra)
    bus, _, _ = platform_bus()
    return qemu.hex(" "), run_on_bus(ops, bus).hex(" ")
