"""Placing virtio-mmio devices on a machine, and the ``--drive`` option.

Each device gets its own 0x200-byte MMIO window, from :data:`MMIO_BASE` upward, and one
interrupt line from :data:`VIRTIO_IRQS`. MMIO has no discovery (virtio 1.2 §4.2.1), so the
guest is told: Linux's ``virtio_mmio`` driver takes ``virtio_mmio.device=<size>@<base>:<irq>``
on its command line (``drivers/virtio/virtio_mmio.c``, ``vm_cmdline_set``: the size through
``memparse``, then ``@%lli:%u``; IRQ 0 is refused), once per device.

Only these machine members are used: ``memory`` (a :class:`GuestMemory`, whose ``add_mmio``
refuses windows over RAM) and ``irq_line(n)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from x86vm.devices.virtio.blk import DiskImageError, DriveSpec, VirtioBlock
from x86vm.devices.virtio.device import VirtioDevice
from x86vm.devices.virtio.mmio import WINDOW_SIZE, VirtioMmio
from x86vm.devices.virtio.rng import VirtioRng
from x86vm.machine.irq import IrqLine

MMIO_BASE = 0xD000_0000
VIRTIO_IRQS = (5, 9, 10, 11, 3, 6, 14)
"""ISA IRQs no PC device of ``devices/pc.py`` uses (0 PIT, 1/12 i8042, 2 cascade, 4 COM1, 8 RTC,
13 FPU; 7 and 15 are the 8259As' spurious vectors)."""

_TRUE = {"on": True, "yes": True, "true": True, "1": True,
         "off": False, "no": False, "false": False, "0": False}


class DriveSpecError(ValueError):
    """A ``--drive`` argument that does not parse."""


def parse_drive(text: str) -> DriveSpec:
    """``file=PATH[,format=raw][,readonly=on][,cache=writeback|none|unsafe]`` (QEMU's
    ``-drive`` syntax: a comma inside a value is written twice, ``,,``)."""
    items = [part.replace("\0", ",") for part in text.replace(",,", "\0").split(",")]
    options: dict[str, str] = {}
    for i, item in enumerate(items):
        key, eq, value = item.partition("=")
        if not eq:
            if i == 0 and item:
                key, value = "file", item
            else:
                raise DriveSpecError(f"--drive {text!r}: {item!r} is not KEY=VALUE")
        if key in options:
            raise DriveSpecError(f"--drive {text!r}: {key} given twice")
        options[key] = value
    unknown = set(options) - {"file", "format", "readonly", "cache"}
    if unknown:
        raise DriveSpecError(f"--drive {text!r}: unknown option(s) {', '.join(sorted(unknown))}"
                             " (file, format, readonly, cache)")
    if not options.get("file"):
        raise DriveSpecError(f"--drive {text!r}: file=PATH is required")
    fmt = options.get("format", "raw")
    if fmt != "raw":
        raise DriveSpecError(f"--drive {text!r}: format={fmt} is not supported (only raw)")
    readonly = _TRUE.get(options.get("readonly", "off").lower())
    if readonly is None:
        raise DriveSpecError(f"--drive {text!r}: readonly={options['readonly']} is not on/off")
    cache = options.get("cache", "writeback")
    if cache not in ("writeback", "none", "unsafe"):
        raise DriveSpecError(f"--drive {text!r}: cache={cache} is not writeback, none or "
                             "unsafe")
    return DriveSpec(options["file"], fmt, readonly, cache)


@dataclass
class AttachedVirtio:
    """One device on the machine: its transport, window, IRQ and command-line fragment."""

    transport: VirtioMmio
    base: int
    irq: int

    @property
    def device(self) -> VirtioDevice:
        return self.transport.device

    @property
    def cmdline(self) -> str:
        return f"virtio_mmio.device={WINDOW_SIZE:#x}@{self.base:#x}:{self.irq}"


class VirtioMachine(Protocol):
    memory: Any

    def irq_line(self, irq: int) -> IrqLine: ...


def attach_virtio(machine: VirtioMachine, drives: list[DriveSpec] | tuple[DriveSpec, ...] = (),
                  rng: bool = True, *, base: int = MMIO_BASE,
                  irqs: tuple[int, ...] = VIRTIO_IRQS,
                  irq_line: Callable[[int], IrqLine] | None = None) -> list[AttachedVirtio]:
    """Open every drive (a missing, locked or badly sized image raises DiskImageError before
    anything is registered), then give each device — the drives in order, then the entropy
    device — a window and an IRQ. ``cmdline_fragment(result)`` is what Linux needs.
    ``irq_line`` says where interrupt inputs are (default ``machine.irq_line``; a board
    whose interrupt controller is a Python model passes that model's inputs)."""
    line_of = irq_line if irq_line is not None else machine.irq_line
    devices: list[VirtioDevice] = []
    try:
        for spec in drives:
            devices.append(VirtioBlock.open(spec))
        if rng:
            devices.append(VirtioRng())
        if len(devices) > len(irqs):
            raise DiskImageError(f"{len(devices)} virtio devices but only {len(irqs)} IRQs "
                                 f"for them")
        attached = []
        for i, dev in enumerate(devices):
            window = base + i * WINDOW_SIZE
            transport = VirtioMmio(dev, machine.memory, line_of(irqs[i]))
            machine.memory.add_mmio(window, WINDOW_SIZE, transport, f"{dev.name}@{window:#x}")
            attached.append(AttachedVirtio(transport, window, irqs[i]))
    except BaseException:
        for dev in devices:
            dev.close()
        raise
    return attached


def cmdline_fragment(attached: list[AttachedVirtio]) -> str:
    """``virtio_mmio.device=0x200@0xd0000000:5 ...`` for every attached device."""
    return " ".join(a.cmdline for a in attached)
