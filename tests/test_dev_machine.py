"""The device probes as real guests on the KVM Machine, against QEMU 7.2 running the same
image: identical port reads (over a debug console at 0xe9), COM1 output and exit status.

The probe image is a 64 KiB real-mode "BIOS" (dev_probe.py); on x86vm it is copied to
0xf0000 and entered at f000:fff0 like a reset vector. Skips when the Machine is not in this
tree yet, when /dev/kvm is unusable, or without QEMU and binutils.
"""

from __future__ import annotations

import calendar

import pytest

from dev_probe import QEMU, TOOLS, apply_masks, build_image, out, run_under_qemu
from dev_scenarios import SCENARIOS, cmos_dump
from x86vm.devices.console import BufferConsole
from x86vm.devices.pc import attach_pc_devices

vm = pytest.importorskip("x86vm.machine.vm", reason="the Machine (kvm branch) is not merged")
boot_state = pytest.importorskip("x86vm.machine.boot.state")

pytestmark = pytest.mark.skipif(not (QEMU and TOOLS),
                                reason="needs qemu-system-x86_64 and GNU as/ld")

RTC_EPOCH = calendar.timegm((2020, 1, 2, 15, 4, 5, 0, 0, 0))
RTC_ARGS = ("-rtc", "base=2020-01-02T15:04:05,clock=vm")


class DebugCon:
    """Bochs/QEMU debug console port: bytes written are recorded."""

    def __init__(self) -> None:
        self.data = bytearray()

    def read(self, offset: int, size: int) -> int:
        return 0xE9

    def write(self, offset: int, size: int, value: int) -> None:
        self.data += (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def run_on_kvm(image: bytes):
    try:
        machine = vm.Machine(memory_size=128 << 20, backend="kvm")
    except Exception as exc:  # MachineError / OSError: no usable /dev/kvm
        pytest.skip(f"KVM unusable: {exc}")
    try:
        console = BufferConsole()
        attach_pc_devices(machine, console, rtc_start=RTC_EPOCH)
        debugcon = DebugCon()
        machine.pio.register(0xE9, 1, debugcon, "debugcon")
        machine.memory.write(0xF0000, image)
        result = machine.run(boot_state.real_mode(0xF000, 0xFFF0), timeout=30)
        return result, bytes(debugcon.data), bytes(console.output)
    finally:
        machine.close()


@pytest.mark.parametrize("name", sorted(SCENARIOS) + ["cmos_dump"])
def test_probe_guest_on_kvm_matches_qemu(tmp_path, name):
    # Both RTCs start at RTC_EPOCH (x86vm's when the devices are attached); each probe ends
    # within milliseconds, long before either clock reaches the next second.
    ops = cmos_dump() if name == "cmos_dump" else SCENARIOS[name]()
    qemu_reads, qemu_serial = run_under_qemu(ops, tmp_path, extra=RTC_ARGS)
    image = build_image(ops, tmp_path).read_bytes()
    result, reads, serial = run_on_kvm(image)
    assert (result.status, result.reason) == (1, "debug-exit: guest wrote 0x0")
    assert apply_masks(ops, reads).hex(" ") == qemu_reads.hex(" ")
    assert serial == qemu_serial


def test_exit_status_and_reset_on_kvm(tmp_path):
    image = build_image([], tmp_path, exit_value=0x2A).read_bytes()
    result, _, _ = run_on_kvm(image)
    assert result.status == (0x2A << 1) | 1
    image = build_image([out(0x64, 0xFE), out(0xF4, 0x01)], tmp_path).read_bytes()
    result, _, _ = run_on_kvm(image)
    assert result.status == 0 and "i8042" in result.reason
