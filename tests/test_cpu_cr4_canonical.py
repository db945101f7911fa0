"""What kvm-unit-tests' la57 and pcid check of the CPU outside paging: MOV to CR4 of a bit
the CPU does not implement is #GP(0) (SDM Vol. 2B "MOV—Move to/from Control Registers":
"an attempt to write a 1 to any reserved bit in CR4"; PCIDE is reserved without its CPUID
bit), as are clearing CR4.PAE and setting CR4.LA57 in IA-32e mode (LA57 changes only outside
it: test_cpu_la57.py; KVM here has no LA57, so the bit is reserved there); in 64-bit mode
LGDT/LIDT of a non-canonical base is #GP(0) and LTR/LLDT of a 16-byte descriptor with a
non-canonical base is #GP(selector). This host's KVM runs the same guests (the oracle; QEMU
7.2 TCG takes the non-canonical bases: la57 FAILs there)."""

# ruff: noqa: F811  (the tests take the imported ``backend`` fixture by its name)
from __future__ import annotations

import pytest

from test_cpu_msr_nmi import _run64, backend  # noqa: F401  (the guest and the backends)

NON_CANONICAL = 0xAAAAAAAAAAAAAAAA


def _set_cr4(bit: int) -> str:
    return f"mov %cr4, %rax; mov $1, %rbx; shl ${bit}, %rbx; or %rbx, %rax; mov %rax, %cr4"


@pytest.mark.parametrize("bit", [12, 15, 25, 31])   # LA57 in IA-32e mode, reserved bits
def test_mov_to_cr4_of_an_unimplemented_bit_is_gp0(backend, bit):
    values, reason = _run64(backend, _set_cr4(bit))
    assert values == [0xBAD, 0], reason


def test_clearing_cr4_pae_in_long_mode_is_gp0(backend):
    values, reason = _run64(backend, "mov %cr4, %rax; and $~0x20, %rax; mov %rax, %cr4")
    assert values == [0xBAD, 0], reason


def test_mov_to_cr4_of_implemented_bits_is_taken(backend):
    body = (_set_cr4(9) + "; " + _set_cr4(10)
            + "; mov %cr4, %rax; shr $9, %eax; out %eax, $0xe0")
    values, reason = _run64(backend, body)
    assert values[0] & 3 == 3 and values[1:] == [0x600D], reason


def _table(mnemonic: str, base: int) -> str:
    return f"""
        sub $16, %rsp
        movw $0xfff, (%rsp)
        movabs ${base:#x}, %rax
        mov %rax, 2(%rsp)
        {mnemonic} (%rsp)
        add $16, %rsp"""


@pytest.mark.parametrize("mnemonic", ["lgdt", "lidt"])
def test_lgdt_lidt_of_a_non_canonical_base_is_gp0(backend, mnemonic):
    values, reason = _run64(backend, _table(mnemonic, NON_CANONICAL))
    assert values == [0xBAD, 0], reason


def _system_descriptor(kind: int, base: int, load: str) -> str:
    """A 16-byte system descriptor (type ``kind``, present) at GDT offset 0x40, then load
    its selector."""
    low = (0x67 | ((base & 0xFFFFFF) << 16) | ((0x80 | kind) << 40)
           | (((base >> 24) & 0xFF) << 56))
    return f"""
        sub $16, %rsp
        sgdt (%rsp)
        mov 2(%rsp), %rbx
        movabs ${low:#x}, %rax
        mov %rax, 0x40(%rbx)
        movl ${base >> 32:#x}, 0x48(%rbx)
        movl $0, 0x4c(%rbx)
        movw $0x4f, (%rsp)
        lgdt (%rsp)
        add $16, %rsp
        mov $0x40, %ax
        {load} %ax"""


@pytest.mark.parametrize(("kind", "load"), [(9, "ltr"), (2, "lldt")])
def test_ltr_lldt_of_a_non_canonical_base_is_gp_selector(backend, kind, load):
    values, reason = _run64(backend, _system_descriptor(kind, NON_CANONICAL, load))
    assert values == [0xBAD, 0x40], reason


@pytest.mark.parametrize(("kind", "load"), [(9, "ltr"), (2, "lldt")])
def test_ltr_lldt_of_a_canonical_high_base_is_taken(backend, kind, load):
    values, reason = _run64(backend, _system_descriptor(kind, 0xFFFF800000001000, load))
    assert values == [0x600D], reason
