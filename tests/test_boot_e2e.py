"""End to end: every test guest boots on the Machine through x86vm's loaders and must produce
the same serial output and exit status as under QEMU TCG, on KVM and on the emulator backend.

The expectation for each scenario comes from running QEMU in this test when
``qemu-system-x86_64`` is installed (QEMU 7.2 TCG, see guests/oracle.py for the command
lines); otherwise from the recorded QEMU results in guests/expected_qemu.json. Each test
records which one it used (``oracle`` user property; also in its failure message).

The long-mode guests also report what the device saw: x86vm attaches a Python model of QEMU's
pc-testdev (guests/testdev.py) and the test checks the guest's accesses reached it with every
width. The timer that wakes its HLT is the PC board's 8254 through its 8259A (the Python models
on emu, KVM's in-kernel ones on kvm).
The Linux-protocol guest cannot boot under QEMU (no PVH note, and QEMU's -kernel has no
64-bit vmlinux entry); its oracle is the PVH run of the same guest body, with the two banner
lines replaced by what the Linux entry prints.
"""

from __future__ import annotations

import pytest

from guests.fixtures import guest_dir  # noqa: F401  (fixture)
from guests.oracle import SCENARIOS, prepare, qemu_available, recorded, run_qemu
from guests.testdev import (
    IOMEM_BASE,
    IOMEM_SIZE,
    IOPORT_BASE,
    IOPORT_SIZE,
    PcTestDevMemory,
    PcTestDevPort,
)
from support import oracles
from support.backends import backend_fixture
from x86vm.devices import console as console_mod
from x86vm.devices import pc
from x86vm.devices import uart as uart_mod
from x86vm.machine import vm
from x86vm.machine.boot import load_image

MEMORY = 128 << 20  # QEMU's -m 128
TIMEOUT = 30.0


backend = backend_fixture()


def expectation(name: str, guest_dir) -> tuple[dict, str]:  # noqa: F811
    if qemu_available():
        return run_qemu(name, guest_dir), "QEMU TCG run live"
    if "qemu" in oracles.required():
        oracles.missing("qemu", "qemu-system-x86_64 not on PATH (not using the recorded results)")
    return recorded(name), "recorded QEMU results (guests/expected_qemu.json)"


def run_x86vm(name: str, guest_dir, backend: str = "kvm"):  # noqa: F811
    sc = SCENARIOS[name]
    prepare(guest_dir)
    image = (guest_dir / sc.image).read_bytes()
    modules = [((guest_dir / f).read_bytes(), string) for f, string in sc.modules]
    console = console_mod.BufferConsole()
    port, iomem = PcTestDevPort(), PcTestDevMemory()
    with vm.Machine(memory_size=MEMORY, backend=backend) as m:
        if sc.i8042:
            pc.attach_pc_devices(m, console, debug_exit_port=0xF4)
        else:  # only the serial port: the guest's shutdown must not rely on the i8042
            uart = uart_mod.Uart16550(m.irq_line(uart_mod.COM1_IRQ), console)
            m.pio.register(uart_mod.COM1_BASE, uart.span, uart, "uart-com1")
        if sc.testdev:
            m.pio.register(IOPORT_BASE, IOPORT_SIZE, port, "pc-testdev")
            m.memory.add_mmio(IOMEM_BASE, IOMEM_SIZE, iomem, "pc-testdev-iomem")
        entry = load_image(m.memory, image, sc.fmt, cmdline=sc.cmdline, modules=modules)
        result = m.run(entry, timeout=TIMEOUT)
    return result, bytes(console.output).decode("latin-1"), port, iomem


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_guest_matches_qemu(backend, guest_dir, request, name):  # noqa: F811
    expected, oracle = expectation(name, guest_dir)
    request.node.user_properties.append(("oracle", oracle))
    result, serial, port, iomem = run_x86vm(name, guest_dir, backend)
    assert (result.status, serial) == (expected["status"], expected["serial"]), \
        f"x86vm: {result.reason}; expected from {oracle}"
    if "triple" in name:
        assert "triple" in result.reason or "shut" in result.reason, result.reason
    if SCENARIOS[name].testdev and "triple" not in name:
        check_testdev_traffic(port, iomem)


def check_testdev_traffic(port: PcTestDevPort, iomem: PcTestDevMemory) -> None:
    """The accesses main.c makes, each of its own width (string I/O: one per element)."""
    assert [entry for entry in port.log if entry[0] == "w"] == \
        [("w", 0, 1), ("w", 0, 2), ("w", 0, 4)] + [("w", 0, 1)] * 4 + [("w", 0, 2)] * 3 + \
        [("w", 0, 4)] * 2
    assert [entry for entry in port.log if entry[0] == "r"] == \
        [("r", 0, 1), ("r", 0, 2), ("r", 0, 4)] + [("r", 0, 1)] * 4 + [("r", 0, 2)] * 3 + \
        [("r", 0, 4)] * 2
    assert iomem.log == [("w", 0x00, 1), ("w", 0x10, 2), ("w", 0x20, 4), ("w", 0x30, 8),
                         ("r", 0x00, 1), ("r", 0x10, 2), ("r", 0x20, 4), ("r", 0x30, 8),
                         ("r", 0x33, 1), ("r", 0x34, 4)]
