"""Probes for the interrupt controllers and timers, run under QEMU 7.2 (``-device pc-testdev``,
whose port 0x2000 + n drives ISA IRQ n) and on x86vm's models, compared byte for byte.

pc-testdev's byte window 0xE8-0xEB covers port 0xE9 (QEMU lets it win over isa-debugcon), so
these probes print through a debug console at 0x402 instead.
"""

from __future__ import annotations

from pathlib import Path

from support import dev_probe
from support.dev_probe import Op, inp, out, run_on_bus
from support.guest_asm import write_flat
from support.virtio_guest import flat_gdt, unreal_mode
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


# -- MMIO probes: the LAPIC and IOAPIC pages from "unreal" mode --------------------------------
# The probe switches to protected mode just long enough to load FS with a flat 4 GiB data
# descriptor and comes back to real mode, so ``addr32 mov %fs:(%ebx)`` reaches 0xFEC00000 and
# 0xFEE00000. Every IVT entry from 0x20 up points at an IRET, so ``take()`` (STI; NOP; CLI)
# lets the CPU acknowledge whatever the LAPIC has pending — on x86vm's side, the same
# acknowledgements through ``pending_vector``/``acknowledge``.

def mmio_read(addr: int, size: int = 4, mask: int | None = None) -> Op:
    return ("mr", addr, size, mask)


def mmio_write(addr: int, value: int, size: int = 4) -> Op:
    return ("mw", addr, size, value)


def take() -> Op:
    return ("take",)


def delay(ns: int) -> Op:
    """Let ``ns`` of guest time pass: under ``-icount shift=0`` a DEC/JNZ loop of ns/2
    iterations (two instructions, 1 ns each); on x86vm's side, the fake clock moves."""
    return ("delay", ns)


_PROLOGUE = f"""
  cli
{unreal_mode('fs')}
2:
  xor %ax, %ax
  mov %ax, %ds
  mov %ax, %ss
  mov $0x7000, %sp
  mov $0x80, %di
  mov $224, %cx
3:
  movw $handler, (%di)
  movw $0xf000, 2(%di)
  add $4, %di
  loop 3b
"""
_EPILOGUE = """
handler:
  iret
""" + flat_gdt(0xf0000)


def _platform_asm(ops: list[Op], debugcon: int) -> str:
    reg = {1: "%al", 2: "%ax", 4: "%eax"}
    lines = [".code16", ".text", "start:", _PROLOGUE]

    def emit_value(size: int) -> None:
        lines.append(f"  mov ${debugcon:#x}, %dx")
        for i in range(size):
            lines.append("  out %al, %dx")
            if i + 1 < size:
                lines.append("  shr $8, %eax")

    for op in ops:
        kind = op[0]
        if kind == "out":
            lines += [f"  mov ${op[1]:#x}, %dx", f"  mov ${op[3]:#x}, {reg[op[2]]}",
                      f"  out {reg[op[2]]}, %dx"]
        elif kind == "in":
            lines += [f"  mov ${op[1]:#x}, %dx", f"  in %dx, {reg[op[2]]}"]
            emit_value(op[2])
        elif kind == "mw":
            lines += [f"  mov ${op[1]:#x}, %ebx", f"  mov ${op[3]:#x}, {reg[op[2]]}",
                      f"  addr32 mov {reg[op[2]]}, %fs:(%ebx)"]
        elif kind == "mr":
            lines += [f"  mov ${op[1]:#x}, %ebx", f"  addr32 mov %fs:(%ebx), {reg[op[2]]}"]
            emit_value(op[2])
        elif kind == "take":
            lines += ["  sti", "  nop", "  nop", "  cli"]
        elif kind == "delay":
            lines += [f"  mov ${max(op[1] // 2, 1)}, %ecx", "5:", "  dec %ecx", "  jnz 5b"]
    lines += [f"  mov ${dev_probe.EXIT_PORT:#x}, %dx", "  mov $0, %al", "  out %al, %dx",
              "4: hlt", "  jmp 4b", _EPILOGUE,
              ".org 0xfff0", "  ljmp $0xf000, $start", ".org 0x10000", ""]
    return "\n".join(lines)


def run_platform_under_qemu(ops: list[Op], workdir: Path,
                            extra: tuple[str, ...] = ("-icount", "shift=0")) -> bytes:
    """Run a port + MMIO probe as QEMU's firmware (with pc-testdev); the bytes it read.
    ``-icount shift=0`` makes guest time deterministic (1 ns per instruction): QEMU's own
    PIT, ticking on IRQ 0 / IOAPIC pin 2 from reset, stays 27 ms away from its first edge."""
    import subprocess
    img = write_flat(_platform_asm(ops, PROBE_DEBUGCON), workdir / "probe.bin", 0)
    dbg = workdir / "debugcon.out"
    proc = subprocess.run(
        [dev_probe.QEMU, "-machine", "pc,accel=tcg", "-m", "128M", "-bios", img,
         "-display", "none", "-nodefaults", "-no-reboot", "-device", "pc-testdev",
         "-chardev", f"file,id=dbg,path={dbg}",
         "-device", f"isa-debugcon,iobase={PROBE_DEBUGCON:#x},chardev=dbg",
         "-device", f"isa-debug-exit,iobase={dev_probe.EXIT_PORT:#x},iosize=1", *extra],
        capture_output=True, timeout=60)
    if proc.returncode != 1:
        raise RuntimeError(f"QEMU exited {proc.returncode}: {proc.stderr.decode()}")
    return _mask(ops, dbg.read_bytes())


def _mask(ops: list[Op], data: bytes) -> bytes:
    result, pos = bytearray(), 0
    for op in ops:
        if op[0] not in ("in", "mr"):
            continue
        size = op[2]
        value = int.from_bytes(data[pos : pos + size], "little")
        mask = op[3] if op[0] == "in" else (op[3] if len(op) > 3 else None)
        if mask is not None:
            value &= mask
        result += value.to_bytes(size, "little")
        pos += size
    return bytes(result)


def run_platform_on_chipset(ops: list[Op]) -> bytes:
    """The same probe on x86vm's chipset (with pc-testdev, no firmware), in zero guest time."""
    from x86vm.devices.chipset import build_chipset
    from x86vm.machine.bus import MmioBus
    pio, mmio = PortBus(), MmioBus()
    timers = FakeTimers()
    chipset = build_chipset(timers, pio=pio, mmio=mmio, testdev=True,
                            firmware=False, ioapic_version=0x20)
    out_bytes = bytearray()
    for op in ops:
        kind = op[0]
        if kind == "out":
            pio.write(op[1], op[2], op[3])
        elif kind == "in":
            out_bytes += pio.read(op[1], op[2]).to_bytes(op[2], "little")
        elif kind == "mw":
            mmio.write(op[1], op[2], op[3])
        elif kind == "mr":
            out_bytes += mmio.read(op[1], op[2]).to_bytes(op[2], "little")
        elif kind == "take":
            while chipset.cpu_interrupts.pending_vector() is not None:
                chipset.cpu_interrupts.acknowledge()
        elif kind == "delay":
            timers.advance(op[1])
    return _mask(ops, bytes(out_bytes))
