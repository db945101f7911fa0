"""Helpers for the KVM tests: the ``kvm`` mark (the /dev/kvm oracle gate), ``assemble`` (the
flat assembler of support/guest_asm.py), identity-mapped long-mode page tables, and device
models that record what the guest did. Imported by the other ``test_kvm_*`` files.
"""

from __future__ import annotations

import pytest

from support.guest_asm import assemble_flat
from x86vm.machine.boot.state import TableRegister, long_mode64


def requires_kvm() -> list[pytest.MarkDecorator]:
    """Marks for tests that run guests: ``kvm``, which tests/conftest.py turns into the oracle
    gate (the raw /dev/kvm probe of tests/support/kvm_probe.py, not x86vm's own ``Kvm``)."""
    return [pytest.mark.kvm]


def runs_guests(test):
    """Decorator form of :func:`requires_kvm` for single tests."""
    for mark in requires_kvm():
        test = mark(test)
    return test


assemble = assemble_flat  # the name the test_kvm_* files and others import


PML4_GPA = 0x1000  # PML4, one PDPT, eight page directories: 2 MiB pages for 0..8 GiB
MAPPED_GIB = 8
GDT_GPA = 0x800


def enter_long_mode(memory, rip: int, **gprs: int):
    """Identity-map the low 8 GiB with 2 MiB pages, write a GDT, and return the entry state
    for 64-bit code at ``rip`` (what a 64-bit boot loader hands over)."""
    pdpt = PML4_GPA + 0x1000
    memory.write_u64(PML4_GPA, pdpt | 0x3)  # present, writable
    for i in range(MAPPED_GIB):
        pd = pdpt + 0x1000 * (i + 1)
        memory.write_u64(pdpt + 8 * i, pd | 0x3)
        for j in range(512):
            memory.write_u64(pd + 8 * j, ((i << 30) | (j << 21)) | 0x83)  # PS, RW, P
    # null, unused, 64-bit code (0x10), data (0x18)
    memory.write_struct(GDT_GPA, "<4Q", 0, 0, 0x00AF9A000000FFFF, 0x00CF92000000FFFF)
    return long_mode64(rip, TableRegister(GDT_GPA, 4 * 8 - 1), PML4_GPA, **gprs)


class Recorder:
    """A device that logs every access and answers reads from a queue (then ``default``)."""

    def __init__(self, answers=(), default: int = 0) -> None:
        self.log: list[tuple] = []
        self.answers = list(answers)
        self.default = default

    def read(self, offset: int, size: int) -> int:
        value = self.answers.pop(0) if self.answers else self.default
        self.log.append(("r", offset, size, value))
        return value

    def write(self, offset: int, size: int, value: int) -> None:
        self.log.append(("w", offset, size, value))


class ExitDevice:
    """Like QEMU's isa-debug-exit: a write of ``v`` ends the run with ``(v << 1) | 1``."""

    def __init__(self, machine) -> None:
        self.machine = machine

    def read(self, offset: int, size: int) -> int:
        return 0xFF

    def write(self, offset: int, size: int, value: int) -> None:
        self.machine.request_stop((value << 1) | 1, f"debug-exit {value:#x}")


def test_assembler_builds_flat_images():
    # "mov $0x1234, %ax; hlt" in 16-bit code is b8 34 12 f4 (objdump -m i8086 agrees)
    assert assemble("mov $0x1234, %ax\nhlt", 0x7C00) == bytes.fromhex("b83412f4")
    # absolute addresses are linked at the base: jmp to 0x7c02 from 0x7c00 is eb 00
    assert assemble("jmp 1f\n1: hlt", 0x7C00) == bytes.fromhex("eb00f4")
