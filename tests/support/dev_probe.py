"""Port-probe programs run twice: as a tiny firmware under QEMU, and against x86vm's devices.

A probe is a list of port operations: ``("out", port, size, value)`` or ``("in", port, size)``.
:func:`run_under_qemu` assembles it into a 64 KiB real-mode image that QEMU loads as its BIOS
(``-bios``), so nothing but the probe touches the devices after reset. Every ``in`` result is
copied, little-endian, to QEMU's debug console (port 0xe9); the program ends with a write to
isa-debug-exit. :func:`run_on_bus` performs the same operations on a
:class:`~x86vm.machine.bus.PortBus` and returns the same byte string, so the two can be
compared byte for byte.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.guest_asm import write_flat
from x86vm.machine.bus import PortBus
from x86vm.machine.irq import NullIrqLine

Op = tuple

DEBUGCON = 0xE9
EXIT_PORT = 0xF4
QEMU = "qemu-system-x86_64"


def out(port: int, value: int, size: int = 1) -> Op:
    return ("out", port, size, value)


def inp(port: int, size: int = 1, mask: int | None = None) -> Op:
    """Read; ``mask`` keeps only the bits both sides must agree on (a documented difference
    from QEMU lies in the other bits)."""
    return ("in", port, size, mask)


def asm(text: str) -> Op:
    """Raw GNU as source (16-bit, code segment 0xf000) spliced into the probe; guests only."""
    return ("asm", text)


def apply_masks(ops: list[Op], data: bytes) -> bytes:
    """Mask the bytes each ``in`` op produced (raw ``asm`` probes are left as they are)."""
    if any(op[0] == "asm" for op in ops):
        return data
    result, pos = bytearray(), 0
    for op in ops:
        if op[0] != "in":
            continue
        size, mask = op[2], op[3]
        value = int.from_bytes(data[pos : pos + size], "little")
        if mask is not None:
            value &= mask
        result += value.to_bytes(size, "little")
        pos += size
    return bytes(result)


_REG = {1: "%al", 2: "%ax", 4: "%eax"}


def _asm(ops: list[Op], exit_value: int) -> str:
    lines = [".code16", ".text", "start:"]
    for op in ops:
        if op[0] == "asm":
            lines.append(op[1])
            continue
        lines.append(f"  mov ${op[1]:#x}, %dx")
        if op[0] == "out":
            _, _, size, value = op
            lines += [f"  mov ${value:#x}, {_REG[size]}", f"  out {_REG[size]}, %dx"]
        else:
            size = op[2]
            lines += [f"  in %dx, {_REG[size]}", f"  mov ${DEBUGCON:#x}, %dx"]
            for i in range(size):
                lines.append("  out %al, %dx")
                if i + 1 < size:
                    lines.append("  shr $8, %eax" if size == 4 else "  mov %ah, %al")
    lines += [f"  mov ${EXIT_PORT:#x}, %dx", f"  mov ${exit_value:#x}, %al", "  out %al, %dx",
              "1: hlt", "  jmp 1b",
              ".org 0xfff0", "  ljmp $0xf000, $start", ".org 0x10000", ""]
    return "\n".join(lines)


def build_image(ops: list[Op], workdir: Path, exit_value: int = 0) -> Path:
    return write_flat(_asm(ops, exit_value), workdir / "probe.bin", 0)


def run_under_qemu(ops: list[Op], workdir: Path, *, memory: str = "128M", smp: int = 1,
                   extra: tuple[str, ...] = (), exit_value: int = 0,
                   timeout: float = 60) -> tuple[bytes, bytes]:
    """Run the probe as QEMU's firmware; returns (masked debugcon bytes, COM1 output)."""
    img = build_image(ops, workdir, exit_value)
    dbg, ser = workdir / "debugcon.out", workdir / "serial.out"
    proc = subprocess.run(
        [QEMU, "-machine", "pc,accel=tcg", "-m", memory, "-smp", str(smp),
         "-bios", img, "-display", "none", "-nodefaults", "-no-reboot",
         "-serial", f"file:{ser}",
         "-chardev", f"file,id=dbg,path={dbg}",
         "-device", f"isa-debugcon,iobase={DEBUGCON:#x},chardev=dbg",
         "-device", f"isa-debug-exit,iobase={EXIT_PORT:#x},iosize=1", *extra],
        capture_output=True, timeout=timeout)
    if proc.returncode != (exit_value << 1 | 1) & 0xFF:  # the probe ran to its end
        raise RuntimeError(f"QEMU exited {proc.returncode}: {proc.stderr.decode()}")
    return apply_masks(ops, dbg.read_bytes()), ser.read_bytes()


def run_on_bus(ops: list[Op], bus: PortBus) -> bytes:
    """The same probe against x86vm's devices; returns the bytes the ``in`` ops produced."""
    result = bytearray()
    for op in ops:
        if op[0] == "out":
            bus.write(op[1], op[2], op[3])
        else:
            result += bus.read(op[1], op[2]).to_bytes(op[2], "little")
    return apply_masks(ops, bytes(result))


class FakeRegion:
    def __init__(self, gpa: int, size: int) -> None:
        self.gpa, self.size = gpa, size


class FakeMemory:
    """RAM layout only (no host memory): ``[0, below)`` and ``[4 GiB, 4 GiB + above)``."""

    def __init__(self, below: int, above: int = 0) -> None:
        self.regions = [FakeRegion(0, below)] + ([FakeRegion(1 << 32, above)] if above else [])
        self.ram_size = below + above


class FakeMachine:
    """The Machine members attach_pc_devices may use (docs/machine-api.md), recording
    requests. Like KVM with its irqchip, it has the interrupt controllers and PIT in-kernel."""

    in_kernel = frozenset({"pic", "ioapic", "lapic", "pit"})

    def __init__(self, below: int = 128 << 20, above: int = 0, num_cpus: int = 1,
                 clock_ns: int = 0) -> None:
        self.pio = PortBus()
        self.memory = FakeMemory(below, above)
        self.num_cpus = num_cpus
        self.now_ns = clock_ns
        self.lines: dict[int, NullIrqLine] = {}
        self.stops: list[tuple[int, str]] = []
        self.resets: list[str] = []

    def irq_line(self, irq: int) -> NullIrqLine:
        return self.lines.setdefault(irq, NullIrqLine())

    def request_stop(self, status: int, reason: str) -> None:
        self.stops.append((status, reason))

    def request_reset(self, reason: str) -> None:
        self.resets.append(reason)

    def clock_ns(self) -> int:
        return self.now_ns
