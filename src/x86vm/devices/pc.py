"""The legacy PC devices of QEMU's ``-M pc`` that guests probe, wired onto a machine.

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

Only these Machine members are used (MACHINE-API.md): ``pio``, ``memory`` (its RAM regions, to
split RAM below/above 4 GiB for the CMOS size bytes, and ``ram_size``), ``irq_line``,
``request_stop``, ``request_reset``, ``clock_ns``, ``num_cpus``.
"""

from __future__ import annotations

from typing import Any, Protocol

from x86vm.devices.cmos import CMOS_PORT, Cmos, pc_cmos_layout
from x86vm.devices.console import Console
from x86vm.devices.debug_exit import DEFAULT_IOSIZE, DebugExit
from x86vm.devices.fw_cfg import FW_CFG_PORT, FwCfg
from x86vm.devices.i8042 import I8042, KEYBOARD_IRQ, MOUSE_IRQ, register_i8042
from x86vm.devices.post import POST_PORT, PostCodePort
from x86vm.devices.uart import COM1_BASE, COM1_IRQ, Uart16550
from x86vm.machine.bus import PortBus
from x86vm.machine.irq import IrqLine

FOUR_GIB = 1 << 32


class PcMachine(Protocol):
    pio: PortBus
    memory: Any
    num_cpus: int

    def irq_line(self, irq: int) -> IrqLine: ...

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


def attach_pc_devices(machine: PcMachine, console: Console | None = None, *,
                      debug_exit_port: int | None = 0xF4,
                      debug_exit_iosize: int = DEFAULT_IOSIZE,
                      rtc_start: float | None = None) -> dict[str, Any]:
    """Create the PC devices, register them on ``machine.pio``; returns them by name
    (``uart``, ``debug_exit`` unless ``debug_exit_port`` is None, ``post``, ``cmos``,
    ``i8042``, ``fw_cfg``). ``rtc_start`` (seconds since the epoch, UTC) pins the RTC for
    reproducible runs; by default it starts at the host's time."""
    pio = machine.pio
    num_cpus = int(getattr(machine, "num_cpus", 1))
    below_4g, above_4g = split_ram(machine.memory)
    devices: dict[str, Any] = {}

    devices["uart"] = uart = Uart16550(machine.irq_line(COM1_IRQ), console)
    pio.register(COM1_BASE, uart.span, uart, "uart-com1")

    if debug_exit_port is not None:
        devices["debug_exit"] = exit_dev = DebugExit(machine.request_stop, debug_exit_iosize)
        pio.register(debug_exit_port, debug_exit_iosize, exit_dev, "debug-exit")

    devices["post"] = post = PostCodePort()
    pio.register(POST_PORT, post.span, post, "post")

    devices["cmos"] = cmos = Cmos(machine.clock_ns, start_time=rtc_start,
                                  ram=pc_cmos_layout(below_4g, above_4g, num_cpus))
    pio.register(CMOS_PORT, cmos.span, cmos, "cmos")

    devices["i8042"] = kbc = I8042(machine.request_reset, machine.irq_line(KEYBOARD_IRQ),
                                   machine.irq_line(MOUSE_IRQ))
    register_i8042(pio, kbc)

    devices["fw_cfg"] = fw_cfg = FwCfg(ram_size=machine.memory.ram_size, num_cpus=num_cpus)
    pio.register(FW_CFG_PORT, 2, fw_cfg, "fw_cfg")
    return devices
