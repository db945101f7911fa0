"""Differential tests: the same port probe as QEMU 7.2's firmware (``-bios``) and on x86vm's
devices must read the same bytes and send the same COM1 output.

Each probe starts right after reset (no SeaBIOS runs: the probe *is* the BIOS). The probes and
the masked bits (documented differences from QEMU) are in dev_scenarios.py.
"""

from __future__ import annotations

import calendar

import pytest

from dev_probe import FakeMachine, run_on_bus, run_under_qemu
from dev_scenarios import SCENARIOS, cmos_dump, fw_cfg_items
from x86vm.devices.console import BufferConsole
from x86vm.devices.pc import attach_pc_devices

pytestmark = pytest.mark.oracle("qemu", "binutils")

RTC_BASE = "2020-01-02T15:04:05"
RTC_EPOCH = calendar.timegm((2020, 1, 2, 15, 4, 5, 0, 0, 0))
RTC_ARGS = ("-rtc", f"base={RTC_BASE},clock=vm")
GIB = 1 << 30
MEMORY_LAYOUTS = [  # QEMU -m, -smp; the same RAM below / above 4 GiB for x86vm
    ("128M", 1, 128 << 20, 0),
    ("15M", 1, 15 << 20, 0),  # below 16 MiB: CMOS 0x34-0x35 are zero, 0x17-0x18 not capped
    ("256M", 2, 256 << 20, 0),
    ("5G", 2, 3 * GIB, 2 * GIB),  # i440fx puts 3 GiB below 4 GiB, the rest above
]


def compare(ops, tmp_path, *, memory="128M", smp=1, below=128 << 20, above=0, exit_value=0):
    """Run ``ops`` under QEMU and on x86vm; assert equal reads and equal COM1 output."""
    qemu_reads, qemu_serial = run_under_qemu(ops, tmp_path, memory=memory, smp=smp,
                                             exit_value=exit_value, extra=RTC_ARGS)
    machine = FakeMachine(below=below, above=above, num_cpus=smp)
    console = BufferConsole()
    attach_pc_devices(machine, console, rtc_start=RTC_EPOCH)
    ours = run_on_bus(ops, machine.pio)
    assert ours.hex(" ") == qemu_reads.hex(" ")
    assert bytes(console.output) == qemu_serial
    return machine


@pytest.mark.parametrize("memory,smp,below,above", MEMORY_LAYOUTS)
def test_cmos_bytes_match_qemu(tmp_path, memory, smp, below, above):
    compare(cmos_dump(), tmp_path, memory=memory, smp=smp, below=below, above=above)


@pytest.mark.parametrize("memory,smp,below,above", MEMORY_LAYOUTS)
def test_fw_cfg_items_match_qemu(tmp_path, memory, smp, below, above):
    compare(fw_cfg_items(), tmp_path, memory=memory, smp=smp, below=below, above=above)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_matches_qemu(tmp_path, name):
    compare(SCENARIOS[name](), tmp_path)


def test_debug_exit_status_matches_qemu(tmp_path):
    machine = compare([], tmp_path, exit_value=0x21)  # QEMU exited (0x21 << 1) | 1 = 67
    machine.pio.write(0xF4, 1, 0x21)  # the probe's final OUT, on our side
    assert machine.stops == [(67, "debug-exit: guest wrote 0x21")]
