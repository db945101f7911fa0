"""The PC board: the legacy devices of QEMU's ``-M pc`` that guests probe, wired onto a
machine, with the console and what the boot loader needs to know about them.

========= ======== ===== =============================================
ports     device   IRQ   model
========= ======== ===== =============================================
0x3f8-3ff COM1     4     :class:`~x86vm.devices.uart.Uart16550`
0xf4      exit     —     :class:`~x86vm.devices.debug_exit.DebugExit`
0x80      POST     —     :class:`~x86vm.devices.post.PostCodePort`
0x70-71   CMOS/RTC —     :class:`~x86vm.devices.cmos.Cmos`
0x60,0x64 i8042    1, 12 :class:`~x86vm.devices.i8042.I8042`
0x510-511 fw_cfg   —     :class:`~x86vm.devices.fw_cfg.FwCfg`
========= ======== ===== =============================================

Interrupt controllers and the PIT: when the machine provides them in the kernel
(``machine.in_kernel``: KVM's irqchip) the devices' lines are the machine's; otherwise the
board adds the Python models of :data:`PLATFORM_MODELS` and wires the lines to their PIC.
Which backend runs the guest is never asked.

Only these Machine members are used (docs/machine-api.md): ``pio``, ``memory`` (its RAM
regions, to split RAM below/above 4 GiB for the CMOS size bytes, and ``ram_size``),
``irq_line``, ``in_kernel``, ``request_stop``, ``request_reset``, ``clock_ns``, ``at``,
``num_cpus``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from x86vm.devices.cmos import CMOS_PORT, Cmos, pc_cmos_layout
from x86vm.devices.console import Console
from x86vm.devices.debug_exit import DEFAULT_IOSIZE, DebugExit
from x86vm.devices.fw_cfg import FW_CFG_PORT, FwCfg
from x86vm.devices.i8042 import I8042, KEYBOARD_IRQ, MOUSE_IRQ, register_i8042
from x86vm.devices.post import POST_PORT, PostCodePort
from x86vm.devices.uart import COM1_BASE, COM1_IRQ, Uart16550
from x86vm.machine.bus import BusError, PortBus
from x86vm.machine.irq import InterruptController, IrqLine, NullIrqLine, TimerHandle

FOUR_GIB = 1 << 32


IRQCHIP = frozenset({"pic", "ioapic"})
PLATFORM_DEVICES = ("pic", "ioapic", "lapic", "pit")
IN_KERNEL_PORTS: dict[str, tuple[tuple[int, int, str], ...]] = {
    "pic": ((0x20, 2, "master PIC"), (0xA0, 2, "slave PIC"), (0x4D0, 2, "ELCR")),
    "pit": ((0x40, 4, "PIT"), (0x61, 1, "speaker port 0x61")),
}
"""Ports a machine's in-kernel device answers without an exit (Linux arch/x86/kvm/i8259.c
and i8254.c register these): nothing put on the bus there would ever be reached."""


class PcMachine(Protocol):
    pio: PortBus
    memory: Any
    num_cpus: int
    in_kernel: frozenset[str]

    def irq_line(self, irq: int) -> IrqLine: ...

    def at(self, deadline_ns: int, callback: Callable[[], None]) -> TimerHandle: ...

    def request_stop(self, status: int, reason: str) -> None: ...

    def request_reset(self, reason: str) -> None: ...

    def clock_ns(self) -> int: ...


def split_ram(memory: Any) -> tuple[int, int]:
    """Bytes of RAM below and above 4 GiB, from the memory's RAM regions."""
    regions = getattr(memory, "regions", None)
    if not regions:
        return min(memory.ram_size, FOUR_GIB), max(memory.ram_size - FOUR_GIB, 0)
    below = sum(max(0, min(r.gpa + r.size, FOUR_GIB) - r.gpa) for r in regions)
    return below, memory.ram_size - below


PlatformModel = Callable[[PcMachine, Callable[[int], IrqLine]], Any]
PLATFORM_MODELS: dict[str, PlatformModel] = {}
"""Python models of the platform devices a machine may lack in the kernel, by the names of
:data:`PLATFORM_DEVICES`: ``model(machine, irq)`` builds the device, registers its ports or
MMIO and returns it; ``irq(n)`` is interrupt input ``n`` (the PIC is built first and returns
an :class:`InterruptController` whose ``line(n)`` the others' ``irq`` then is). Filled in as
the models land (devices/pic.py, pit.py, ioapic.py, lapic.py)."""


@dataclass(eq=False)
class PcBoard:
    """The devices of a PC, typed, and what they need from the boot loader.

    ``cmdline_fragments`` and ``reserved`` collect what devices contribute (a
    ``virtio_mmio.device=`` parameter, a window kept out of RAM): pass them to
    :func:`~x86vm.machine.boot.load_image`. ``pic``/``ioapic``/``lapic``/``pit`` are the
    Python models the board added (None where the machine has the device in the kernel,
    or no model exists yet: see ``unmodelled``).
    """

    console: Console
    uart: Uart16550
    post: PostCodePort
    cmos: Cmos
    i8042: I8042
    fw_cfg: FwCfg
    debug_exit: DebugExit | None
    in_kernel: frozenset[str]
    pic: InterruptController | None = None
    ioapic: Any = None
    lapic: Any = None
    pit: Any = None
    unmodelled: tuple[str, ...] = ()
    """Platform devices neither the machine nor a Python model provides."""
    cmdline_fragments: list[str] = field(default_factory=list)
    reserved: list[tuple[int, int]] = field(default_factory=list)
    extra: list[Any] = field(default_factory=list)
    """Devices attached after the PC set (virtio…), by :meth:`add`."""

    def add(self, device: Any, *, cmdline: str = "",
            reserve: tuple[int, int] | None = None) -> None:
        """Keep ``device`` with the board, with the kernel parameter and reserved
        ``(address, size)`` range it needs, if any."""
        self.extra.append(device)
        if cmdline:
            self.add_cmdline(cmdline)
        if reserve is not None:
            self.reserve(*reserve)

    def add_cmdline(self, fragment: str) -> None:
        """A kernel parameter a device needs (appended by the Linux and PVH loaders)."""
        if not fragment or fragment != fragment.strip() or "\0" in fragment:
            raise ValueError(f"bad kernel command-line fragment {fragment!r}")
        self.cmdline_fragments.append(fragment)

    def reserve(self, address: int, size: int) -> None:
        """Keep ``[address, address + size)`` out of the guest's RAM (e820 "reserved")."""
        if address < 0 or size <= 0:
            raise ValueError(f"bad reserved range {address:#x}+{size:#x}")
        self.reserved.append((address, size))

    def boot_options(self) -> dict[str, Any]:
        """The keyword arguments of ``load_image`` that carry the board's needs."""
        return {"cmdline_fragments": tuple(self.cmdline_fragments),
                "reserved": tuple(self.reserved)}

    def close(self) -> None:
        """Stop host input (the console's reader thread) and release the console."""
        self.uart.close()
        self.console.close()


def _interrupt_lines(machine: PcMachine, board_models: dict[str, Any]
                     ) -> Callable[[int], IrqLine]:
    """Where device interrupts go: the machine's in-kernel PIC/IOAPIC, else the Python
    PIC's inputs, else nowhere (devices still work polled, as the 16550 does)."""
    if IRQCHIP <= machine.in_kernel:
        return machine.irq_line
    pic = board_models.get("pic")
    if pic is not None:
        return pic.line
    return lambda irq: NullIrqLine()


def in_kernel_port_owner(in_kernel: frozenset[str], base: int, size: int) -> str | None:
    """The in-kernel device that answers any of ports ``[base, base + size)``, or None."""
    for device in sorted(in_kernel):
        for start, length, name in IN_KERNEL_PORTS.get(device, ()):
            if base < start + length and start < base + size:
                return name
    return None


def attach_pc_devices(machine: PcMachine, console: Console | None = None, *,
                      debug_exit_port: int | None = 0xF4,
                      debug_exit_iosize: int = DEFAULT_IOSIZE,
                      rtc_start: float | None = None) -> PcBoard:
    """Create the PC devices, register them on ``machine.pio``, connect ``console`` (host
    input starts flowing to the UART now) and return the :class:`PcBoard`. No debug-exit
    device when ``debug_exit_port`` is None. ``rtc_start`` (seconds since the epoch, UTC)
    pins the RTC for reproducible runs; by default it starts at the host's time."""
    pio = machine.pio
    num_cpus = int(getattr(machine, "num_cpus", 1))
    in_kernel = frozenset(machine.in_kernel)
    below_4g, above_4g = split_ram(machine.memory)
    console = console if console is not None else Console()

    models: dict[str, Any] = {}
    unmodelled = [name for name in PLATFORM_DEVICES
                  if name not in in_kernel and name not in PLATFORM_MODELS]
    wanted = [name for name in PLATFORM_DEVICES
              if name not in in_kernel and name in PLATFORM_MODELS]
    if "pic" in wanted:  # first: the others' interrupts go to it
        models["pic"] = PLATFORM_MODELS["pic"](machine, _interrupt_lines(machine, models))
    irq = _interrupt_lines(machine, models)
    for name in wanted:
        if name != "pic":
            models[name] = PLATFORM_MODELS[name](machine, irq)

    uart = Uart16550(irq(COM1_IRQ), console)
    pio.register(COM1_BASE, uart.span, uart, "uart-com1")

    exit_dev = None
    if debug_exit_port is not None:
        owner = in_kernel_port_owner(in_kernel, debug_exit_port, debug_exit_iosize)
        if owner is not None:
            raise BusError(f"debug-exit port {debug_exit_port:#x} belongs to the in-kernel "
                           f"{owner}: the guest's writes there never leave the kernel")
        exit_dev = DebugExit(machine.request_stop, debug_exit_iosize)
        pio.register(debug_exit_port, debug_exit_iosize, exit_dev, "debug-exit")

    post = PostCodePort()
    pio.register(POST_PORT, post.span, post, "post")

    cmos = Cmos(machine.clock_ns, start_time=rtc_start,
                ram=pc_cmos_layout(below_4g, above_4g, num_cpus))
    pio.register(CMOS_PORT, cmos.span, cmos, "cmos")

    kbc = I8042(machine.request_reset, irq(KEYBOARD_IRQ), irq(MOUSE_IRQ))
    register_i8042(pio, kbc)

    fw_cfg = FwCfg(ram_size=machine.memory.ram_size, num_cpus=num_cpus)
    pio.register(FW_CFG_PORT, 2, fw_cfg, "fw_cfg")

    board = PcBoard(console=console, uart=uart, post=post, cmos=cmos, i8042=kbc,
                    fw_cfg=fw_cfg, debug_exit=exit_dev, in_kernel=in_kernel,
                    unmodelled=tuple(unmodelled), **models)
    console.start(uart.feed)  # the console's thread, not the UART's, carries host input
    return board
