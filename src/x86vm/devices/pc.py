"""The PC board: the legacy devices of QEMU's ``-M pc`` that guests probe, wired onto a
machine, with the console and what the boot loader needs to know about them.

========= ======== ===== =============================================
ports     device   IRQ   model
========= ======== ===== =============================================
0x3f8-3ff COM1     4     :class:`~x86vm.devices.uart.Uart16550`
0xf4      exit     —     :class:`~x86vm.devices.debug_exit.DebugExit`
0x80      POST     —     :class:`~x86vm.devices.post.PostCodePort`
0x70-71   CMOS/RTC 8     :class:`~x86vm.devices.cmos.Cmos`
0x60,0x64 i8042    1, 12 :class:`~x86vm.devices.i8042.I8042`
0x510-511 fw_cfg   —     :class:`~x86vm.devices.fw_cfg.FwCfg`
0x600-60b ACPI PM  (9)   :class:`~x86vm.devices.acpi_pm.AcpiPm` (power-off)
========= ======== ===== =============================================

Firmware tables: the board describes this platform (``PcBoard.firmware``, a
:class:`~x86vm.machine.boot.firmware.PlatformTables`) and the boot loaders for kernels
(Multiboot, Linux, PVH) write the MP table and ACPI tables from it into the BIOS window
0xF0000-0xF0FFF, which the board reserves. Both irqchips (KVM's in-kernel one and the
Python chipset) have the devices the tables list, at the same addresses and IDs.

Interrupt controllers and the PIT: when the machine provides them in the kernel
(``machine.in_kernel``: KVM's irqchip) the devices' lines are the machine's; otherwise the
board builds the Python chipset (:func:`~x86vm.devices.chipset.build_chipset`: 8259 pair,
PIT, IOAPIC, LAPIC, wired as QEMU's ``-M pc``), gives every device its ISA IRQ line from it
and hands the vCPU side its interrupt controller and local APIC
(``machine.set_interrupt_controller``). Which backend runs the guest is never asked.

Only these Machine members are used (docs/machine-api.md): ``pio``, ``memory`` (its RAM
regions, to split RAM below/above 4 GiB for the CMOS size bytes, and ``ram_size``),
``mmio``, ``irq_line``, ``in_kernel``, ``request_stop``, ``request_reset``, ``clock_ns``,
``at``, ``num_cpus``, ``set_interrupt_controller``, ``interrupt_pending``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from x86vm.devices.acpi_pm import AcpiPm
from x86vm.devices.chipset import Chipset, build_chipset, seabios_writes
from x86vm.devices.cmos import CMOS_PORT, RTC_IRQ, Cmos, pc_cmos_layout
from x86vm.devices.console import Console
from x86vm.devices.debug_exit import DEFAULT_IOSIZE, DebugExit
from x86vm.devices.fw_cfg import FW_CFG_PORT, FwCfg
from x86vm.devices.i8042 import I8042, KEYBOARD_IRQ, MOUSE_IRQ, register_i8042
from x86vm.devices.ioapic import NUM_PINS as IOAPIC_PINS
from x86vm.devices.pc_testdev import PcTestDev
from x86vm.devices.post import POST_PORT, PostCodePort
from x86vm.devices.uart import COM1_BASE, COM1_IRQ, Uart16550
from x86vm.machine.boot.firmware import PM_BASE, TABLES_SIZE, PlatformTables, build_tables
from x86vm.machine.bus import BusError, PortBus
from x86vm.machine.irq import InterruptController, IrqLine, TimerHandle

FOUR_GIB = 1 << 32


PLATFORM_DEVICES = frozenset({"pic", "ioapic", "lapic", "pit"})
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

    def set_interrupt_controller(self, controller: InterruptController,
                                 local_apic: Any = None) -> bool: ...

    def interrupt_pending(self) -> None: ...


def split_ram(memory: Any) -> tuple[int, int]:
    """Bytes of RAM below and above 4 GiB, from the memory's RAM regions."""
    regions = getattr(memory, "regions", None)
    if not regions:
        return min(memory.ram_size, FOUR_GIB), max(memory.ram_size - FOUR_GIB, 0)
    below = sum(max(0, min(r.gpa + r.size, FOUR_GIB) - r.gpa) for r in regions)
    return below, memory.ram_size - below


class PlatformError(ValueError):
    """The machine provides some platform devices in the kernel but not all of them."""


class DeferredLine:
    """An :class:`IrqLine` safe to drive from any thread (the console's reader feeding the
    UART): a level change made off the vCPU thread is replayed on it through the timer
    service (``at(now)``), since the Python controllers are not locked. The vCPU thread is
    learnt from the first replay; until then every change is replayed."""

    def __init__(self, line: IrqLine, machine: PcMachine) -> None:
        self.line, self.machine = line, machine
        self.vcpu_thread: int | None = None

    def set_level(self, level: bool) -> None:
        if threading.get_ident() == self.vcpu_thread:
            self.line.set_level(level)
            return
        self.machine.at(0, lambda: self._replay(level))

    def _replay(self, level: bool) -> None:
        self.vcpu_thread = threading.get_ident()
        self.line.set_level(level)


@dataclass(eq=False)
class PcBoard:
    """The devices of a PC, typed, and what they need from the boot loader.

    ``cmdline_fragments`` and ``reserved`` collect what devices contribute (a
    ``virtio_mmio.device=`` parameter, a window kept out of RAM): pass them to
    :func:`~x86vm.machine.boot.load_image`. ``chipset`` holds the Python PIC pair, PIT,
    IOAPIC and LAPIC (None when the machine has them in the kernel).
    """

    console: Console
    uart: Uart16550
    post: PostCodePort
    cmos: Cmos
    i8042: I8042
    fw_cfg: FwCfg
    debug_exit: DebugExit | None
    in_kernel: frozenset[str]
    chipset: Chipset | None = None
    """The Python interrupt controllers and PIT, when the machine has none in the kernel."""
    acpi_pm: AcpiPm | None = None
    testdev: PcTestDev | None = None
    firmware: PlatformTables | None = None
    """What the loader's MP and ACPI tables describe (None: no tables)."""
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
                "reserved": tuple(self.reserved), "firmware": self.firmware}

    def close(self) -> None:
        """Stop host input (the console's reader thread) and release the console."""
        self.uart.close()
        self.console.close()


def _python_platform(machine: PcMachine, in_kernel: frozenset[str], testdev: bool,
                     debugcon_write: Callable[[bytes], object] | None,
                     firmware: bool = True) -> Chipset | None:
    """The chipset the board builds when the machine has no in-kernel irqchip."""
    have = in_kernel & PLATFORM_DEVICES
    if have == PLATFORM_DEVICES:
        return None
    if have:
        raise PlatformError(f"the machine has only {sorted(have)} in the kernel: the board "
                            f"models all of {sorted(PLATFORM_DEVICES)} or none")
    chipset = build_chipset(machine, pio=machine.pio, mmio=machine.mmio,
                            on_pending=machine.interrupt_pending, testdev=testdev,
                            debugcon_write=debugcon_write, firmware=firmware)
    if not machine.set_interrupt_controller(chipset.cpu_interrupts, chipset.lapic):
        raise PlatformError("the backend takes no interrupts from a Python controller")
    return chipset


def in_kernel_port_owner(in_kernel: frozenset[str], base: int, size: int) -> str | None:
    """The in-kernel device that answers any of ports ``[base, base + size)``, or None."""
    for device in sorted(in_kernel):
        for start, length, name in IN_KERNEL_PORTS.get(device, ()):
            if base < start + length and start < base + size:
                return name
    return None


def _s3_suspend(machine: PcMachine, firmware: PlatformTables) -> Callable[[], None] | None:
    """ACPI S3 for the PM1 block: the machine suspends (``request_suspend``, if it can) and
    resumes at the FACS's firmware waking vector (ACPI 6.4 Table 5.14, offset 12) as the
    guest left it there."""
    request_suspend = getattr(machine, "request_suspend", None)
    if request_suspend is None:
        return None
    facs = build_tables(firmware).tables["FACS"]

    def waking_vector() -> int:
        return int.from_bytes(machine.memory.read(facs + 12, 4), "little")

    return lambda: request_suspend(waking_vector)


def attach_pc_devices(machine: PcMachine, console: Console | None = None, *,
                      debug_exit_port: int | None = 0xF4,
                      debug_exit_iosize: int = DEFAULT_IOSIZE,
                      rtc_start: float | None = None, testdev: bool = False,
                      firmware_handoff: bool = True) -> PcBoard:
    """Create the PC devices, register them on ``machine.pio``, connect ``console`` (host
    input starts flowing to the UART now) and return the :class:`PcBoard`. No debug-exit
    device when ``debug_exit_port`` is None. ``rtc_start`` (seconds since the epoch, UTC)
    pins the RTC for reproducible runs; by default it starts at the host's time.
    ``testdev`` adds QEMU's pc-testdev (kvm-unit-tests use its IRQ port; its lines are the
    chipset's or the in-kernel irqchip's); without it the Python chipset has QEMU's debug
    console at 0xE9 (written to the console). ``firmware_handoff`` leaves the Python
    chipset as SeaBIOS hands it to a kernel; False keeps the power-on state (PIC not
    initialised, PIT not counting) for a guest that is its own firmware (``--bios``)."""
    pio = machine.pio
    num_cpus = int(getattr(machine, "num_cpus", 1))
    in_kernel = frozenset(machine.in_kernel)
    below_4g, above_4g = split_ram(machine.memory)
    console = console if console is not None else Console()

    chipset = _python_platform(machine, in_kernel, testdev, console.write, firmware_handoff)
    testdev_dev = None
    if chipset is None:
        irq: Callable[[int], IrqLine] = machine.irq_line
        if testdev:  # the same test device on KVM's in-kernel irqchip
            testdev_dev = PcTestDev([machine.irq_line(n) for n in range(IOAPIC_PINS)])
            testdev_dev.register(pio, getattr(machine, "mmio", None))
    else:
        irq = chipset.irq_line
        testdev_dev = chipset.testdev

    uart_line = irq(COM1_IRQ)
    if chipset is not None:  # host input raises the UART's IRQ from the console's thread
        uart_line = DeferredLine(uart_line, machine)
    uart = Uart16550(uart_line, console)
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
                ram=pc_cmos_layout(below_4g, above_4g, num_cpus), irq=irq(RTC_IRQ),
                timers=machine)
    pio.register(CMOS_PORT, cmos.span, cmos, "cmos")

    kbc = I8042(machine.request_reset, irq(KEYBOARD_IRQ), irq(MOUSE_IRQ))
    register_i8042(pio, kbc)

    fw_cfg = FwCfg(ram_size=machine.memory.ram_size, num_cpus=num_cpus)
    pio.register(FW_CFG_PORT, 2, fw_cfg, "fw_cfg")

    # a Python chipset starts as firmware leaves it (seabios_handoff); the in-kernel one is
    # programmed by the guest: the Multiboot loader's stub makes the same writes
    firmware = PlatformTables(num_cpus=num_cpus, pm_base=PM_BASE,
                              init_writes=seabios_writes() if chipset is None else ())

    acpi_pm = AcpiPm(machine.clock_ns, machine.request_stop,
                     suspend=_s3_suspend(machine, firmware),
                     wake=getattr(machine, "wake", None))
    cmos.on_alarm = acpi_pm.rtc_alarm
    pio.register(PM_BASE, acpi_pm.span, acpi_pm, "acpi-pm")
    board = PcBoard(console=console, uart=uart, post=post, cmos=cmos, i8042=kbc,
                    fw_cfg=fw_cfg, debug_exit=exit_dev, in_kernel=in_kernel,
                    chipset=chipset, acpi_pm=acpi_pm, firmware=firmware,
                    testdev=testdev_dev)
    board.reserve(firmware.base, TABLES_SIZE)
    console.start(uart.feed)  # the console's thread, not the UART's, carries host input
    return board
