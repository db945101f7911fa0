"""Clear, one-line errors when KVM cannot be used, and Machine set-up checks (no VM needed
for most of them)."""

import importlib.util

import pytest

from test_kvm_support import ExitDevice, assemble, enter_long_mode, runs_guests
from x86vm.machine.kvm.system import Kvm, KvmError
from x86vm.machine.vm import HIGH_RAM_BASE, LOW_RAM_LIMIT, Machine, MachineError


def test_missing_device_node():
    with pytest.raises(KvmError, match=r"^/nonexistent/kvm does not exist: KVM is not "):
        Kvm("/nonexistent/kvm")


def test_a_file_that_is_not_kvm():
    # ENOTTY from the first ioctl: the message names the ioctl and the errno text
    with pytest.raises(KvmError, match=r"^KVM_GET_API_VERSION: Inappropriate ioctl for device$"):
        Kvm("/dev/null")


def test_kvm_errors_are_machine_errors_for_the_cli():
    with pytest.raises(MachineError, match="does not exist"):
        Machine(memory_size=1 << 20, kvm_path="/nonexistent/kvm")


@pytest.mark.parametrize("size", [0, 4095, -4096, 1 << 41])
def test_bad_memory_sizes(size):
    with pytest.raises(MachineError, match="memory size"):
        Machine(memory_size=size)


def test_unknown_and_missing_backends():
    with pytest.raises(MachineError, match=r"unknown backend 'qemu' \(choose from kvm, emu\)"):
        Machine(memory_size=1 << 20, backend="qemu")
    if importlib.util.find_spec("x86vm.machine.emu") is None:  # until the emu backend lands
        with pytest.raises(MachineError, match="the emu backend is not available"):
            Machine(memory_size=1 << 20, backend="emu")


@runs_guests
def test_ram_above_3_gib_continues_at_4_gib_and_the_guest_sees_it():
    with Machine(memory_size=LOW_RAM_LIMIT + (2 << 20)) as m:
        assert [(r.gpa, r.size) for r in m.memory.regions] == [
            (0, LOW_RAM_LIMIT), (HIGH_RAM_BASE, 2 << 20)]
        m.pio.register(0xF4, 1, ExitDevice(m))
        source = f"""
            mov ${HIGH_RAM_BASE + 0x1FFFF8:#x}, %rbx   # the last 8 bytes of RAM
            mov $0x1122334455667788, %rax
            mov %rax, (%rbx)
            mov $0, %al
            out %al, $0xf4
        """
        m.memory.write(0x10000, assemble(source, 0x10000, 64))
        result = m.run(enter_long_mode(m.memory, 0x10000), timeout=5)
        assert result.status == 1, result.reason
        assert m.memory.read_u64(HIGH_RAM_BASE + 0x1FFFF8) == 0x1122334455667788
