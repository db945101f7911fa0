"""Reset-vector boot (issue 10 item 8): ``x86vm run --bios ROM`` / ``--loader rom``.

The ROM guest (tests/guests/rom/reset.S) starts at physical FFFFFFF0 in the reset state,
far-jumps into its copy below 1 MiB and checks there what a PC's firmware relies on: the ROM
is read-only, RAM below it is writable, the reset vector's bytes appear at F000:FFF0. Each
backend runs it; they must agree with each other and the guest's own checks must pass.
"""

from __future__ import annotations

import pytest

from guests.build import build
from support import oracles
from support.backends import BACKENDS
from test_cli_run import x86vm
from x86vm.cpu.state import EntryState
from x86vm.machine.boot import BootError
from x86vm.machine.boot.rom import LEGACY_END, LEGACY_WINDOW, reset_state, rom_regions
from x86vm.machine.memory import GuestMemoryError
from x86vm.machine.vm import Machine, _ram_pieces

EXPECTED = "rom: started from the reset vector\nrom: done\n"  # text mode: \r\n read as \n


@pytest.fixture(scope="module")
def rom(tmp_path_factory):
    oracles.require("gcc", "binutils")
    return build("rom64k.bin", tmp_path_factory.mktemp("rom"))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spelling", ["--bios", "--loader rom"])
def test_rom_runs_from_the_reset_vector(rom, backend, spelling):
    if backend == "kvm":
        oracles.require("kvm")
    done = x86vm("run", "--backend", backend, *spelling.split(), rom, "--timeout", "30")
    assert done.stdout == EXPECTED, done.stderr
    assert done.returncode == 1, done.stderr   # debug-exit 0: no check failed


def test_reset_state_is_the_sdm_reset_state():
    state = reset_state()
    assert isinstance(state, EntryState)
    assert (state.cs.selector, state.cs.base, state.rip) == (0xF000, 0xFFFF0000, 0xFFF0)
    assert state.cs.base + state.rip == 0xFFFFFFF0
    assert state.mode == "real"
    assert state.cr0 & 1 == 0


@pytest.mark.parametrize("size", [1, 4096, 5000, 64 << 10, 128 << 10, 256 << 10])
def test_rom_ends_at_4gib_and_its_top_appears_below_1mib(size):
    data = bytes((i * 7) & 0xFF for i in range(size))
    (high, high_data), (low, low_data) = rom_regions(data)
    assert high + len(high_data) == 1 << 32 and high % 4096 == 0
    assert high_data.endswith(data) and set(high_data[:-size]) <= {0xFF}
    assert low + len(low_data) == LEGACY_END
    assert len(low_data) == min(len(high_data), LEGACY_WINDOW)
    assert high_data.endswith(low_data)


@pytest.mark.parametrize("size, message", [(0, "empty ROM"), ((16 << 20) + 1, "larger")])
def test_bad_rom_sizes(size, message):
    with pytest.raises(BootError, match=message):
        rom_regions(bytes(size))


def test_ram_leaves_a_hole_for_the_low_copy():
    pieces = _ram_pieces(0, 128 << 20, [(0xE0000, bytes(0x20000)), (0xFFFE0000, b"")])
    assert pieces == [(0, 0xE0000), (0x100000, 128 << 20)]


def test_machine_maps_the_rom_read_only():
    regions = rom_regions(bytes(range(256)) * 256)
    with Machine(memory_size=4 << 20, backend="emu", rom=regions) as m:
        assert m.memory.read(0xFFFFFFF0, 4) == bytes([0xF0, 0xF1, 0xF2, 0xF3])
        assert m.memory.read(0xFFFF0, 4) == bytes([0xF0, 0xF1, 0xF2, 0xF3])
        ro = [r for r in m.memory.regions if r.readonly]
        assert sorted(r.gpa for r in ro) == [0xF0000, 0xFFFF0000]
        assert m.memory.is_ram(0xEFFFF) and m.memory.is_ram(0x100000)


def test_rom_over_ram_that_is_not_there_is_an_error():
    with pytest.raises(GuestMemoryError, match="not a multiple of 4 KiB"):
        from x86vm.machine.memory import GuestMemory
        GuestMemory().add_rom(0x1000, b"x")


@pytest.mark.parametrize("args, message", [
    (["--bios", "ROM", "ROM"], "--bios starts the machine from its ROM: give no IMAGE"),
    (["--loader", "rom"], "--loader rom needs the ROM image as IMAGE"),
    (["--bios", "ROM", "--cmdline", "x"], "a ROM boots itself"),
    (["--bios", "EMPTY"], "empty ROM image"),
    (["--bios", "/nonexistent"], "cannot read ROM /nonexistent"),
])
def test_rom_option_errors_are_one_line(tmp_path, rom, args, message):
    (tmp_path / "EMPTY").write_bytes(b"")
    args = [str(rom) if a == "ROM" else str(tmp_path / a) if a == "EMPTY" else a
            for a in args]
    done = x86vm("run", "--backend", "emu", *args)
    assert done.returncode == 2
    assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr


@pytest.mark.kvm
def test_rom_exit_sequence_equals_kvm(rom, monkeypatch):
    """The ROM guest makes the same port-I/O and MMIO exits, in the same order with the same
    data, on emu as on KVM (the recorder of test_cpu_exits)."""
    from test_cpu_exits import _recording
    from x86vm.devices.console import BufferConsole
    from x86vm.devices.pc import attach_pc_devices
    oracles.require("kvm")
    runs = {}
    for backend in ("kvm", "emu"):
        log: list = []
        with monkeypatch.context() as mp:
            _recording(mp, log)
            console = BufferConsole()
            with Machine(memory_size=16 << 20, backend=backend,
                         rom=rom_regions(rom.read_bytes())) as m:
                attach_pc_devices(m, console, debug_exit_port=0xF4, firmware_handoff=False)
                result = m.run(reset_state(), timeout=30)
        runs[backend] = (result.status, bytes(console.output), log)
    assert runs["emu"] == runs["kvm"]
    assert len(runs["emu"][2]) > 40 and runs["emu"][0] == 1   # the checks' output, then exit
