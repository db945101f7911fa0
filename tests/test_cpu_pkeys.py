"""Protection keys (PKU: PKRU for user pages, PKS: IA32_PKRS for supervisor pages), as small
64-bit guests on the Python CPU — what kvm-unit-tests' pku and pks check. The oracle is the
SDM (Vol. 3A §4.6.2 "Protection Keys", §4.7 the PK bit 5 of the #PF error code; Vol. 2B
RDPKRU/WRPKRU) as QEMU TCG models it (it passes both tests here); this host's CPU has
neither feature, so KVM cannot run these guests."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cpu.asmguest import assemble, assembler_missing, run_guest

pytestmark = pytest.mark.skipif(assembler_missing() is not None, reason=str(assembler_missing()))

USER_PAGE, SUPER_PAGE = 0x200000, 0x400000   # 2 MiB pages: key 1 (user), key 2 (supervisor)
CR4_PKE, CR4_PKS = 1 << 22, 1 << 24
MSR_PKRS = 0x6E1

_GUEST = """
        lidt idtr(%rip)
        lea pf(%rip), %rax
        call gate
        movl $13, %ebx
        lea gp(%rip), %rax
        call gate
        movl $6, %ebx
        lea ud(%rip), %rax
        call gate
        {body}
        mov $0x600d, %eax             /* no fault */
        out %eax, $0xe0
        cli
        hlt
    gate:                             /* IDT[%ebx] (14 if unset) → %rax */
        test %ebx, %ebx
        jnz 1f
        movl $14, %ebx
    1:  shl $4, %ebx
        movw %ax, 0x30000(%ebx)
        movw $0x10, 0x30002(%ebx)
        movw $0x8e00, 0x30004(%ebx)
        shr $16, %rax
        movw %ax, 0x30006(%ebx)
        movl $0, 0x30008(%ebx)
        movl $0, 0x3000c(%ebx)
        xor %ebx, %ebx
        ret
    pf:
        mov $0x14, %eax               /* #PF, its error code, CR2 */
        out %eax, $0xe0
        pop %rax
        out %eax, $0xe0
        mov %cr2, %rax
        out %eax, $0xe0
        cli
        hlt
    gp:
        mov $0x13, %eax
        out %eax, $0xe0
        cli
        hlt
    ud:
        mov $0x6, %eax
        out %eax, $0xe0
        cli
        hlt
    idtr: .word 0xfff
        .quad 0x30000
"""


def _map(memory, entry):
    """0-2 MiB supervisor (code, key 0), 2-4 MiB user with key 1, 4-6 MiB supervisor with
    key 2, 6-8 MiB user read-only with key 1; 2 MiB pages, PML4 at 0x100000."""
    memory.write_u64(0x100000, 0x101007)
    memory.write_u64(0x101000, 0x102007)
    memory.write_u64(0x102000, 0x000083)
    memory.write_u64(0x102008, USER_PAGE | 0x87 | (1 << 59))
    memory.write_u64(0x102010, SUPER_PAGE | 0x83 | (2 << 59))
    memory.write_u64(0x102018, 0x600085 | (1 << 59))
    return replace(entry, cr3=0x100000)


def _run(body: str) -> list[int]:
    code = assemble(_GUEST.format(body=body), 64, 0x10000)
    result, port, _, _ = run_guest("emu", code, 64, 0x10000, setup=_map,
                                   memory_size=16 << 20)
    return [v for _, _, _, v in port.log]


def _cr4(bits: int) -> str:
    return f"mov %cr4, %rax; or ${bits:#x}, %rax; mov %rax, %cr4;"


def _pkru(value: int) -> str:
    return f"xor %ecx, %ecx; xor %edx, %edx; mov ${value:#x}, %eax; wrpkru;"


def _pkrs(value: int) -> str:
    return f"mov ${MSR_PKRS:#x}, %ecx; xor %edx, %edx; mov ${value:#x}, %eax; wrmsr;"


WP_OFF = "mov %cr0, %rax; and $~0x10000, %eax; mov %rax, %cr0;"
WP_ON = "mov %cr0, %rax; or $0x10000, %eax; mov %rax, %cr0;"
READ_USER, WRITE_USER = f"mov {USER_PAGE:#x}, %eax;", f"movl $1, {USER_PAGE:#x};"
READ_SUPER, WRITE_SUPER = f"mov {SUPER_PAGE:#x}, %eax;", f"movl $1, {SUPER_PAGE:#x};"


@pytest.mark.parametrize(("body", "expected"), [
    # PKRU.AD (bit 2k) forbids every data access to a user page, supervisor ones too: P|PK
    (_cr4(CR4_PKE) + _pkru(1 << 2) + READ_USER, [0x14, 0x21, USER_PAGE]),
    (_cr4(CR4_PKE) + _pkru(1 << 2) + WRITE_USER, [0x14, 0x23, USER_PAGE]),
    # another key's rights do not matter
    (_cr4(CR4_PKE) + _pkru(0xFFFFFFF3) + READ_USER + WRITE_USER, [0x600d]),
    # PKRU.WD (bit 2k+1): a supervisor write is refused only when CR0.WP = 1
    (_cr4(CR4_PKE) + _pkru(2 << 2) + WP_OFF + WRITE_USER, [0x600d]),
    (_cr4(CR4_PKE) + _pkru(2 << 2) + WP_ON + WRITE_USER, [0x14, 0x23, USER_PAGE]),
    (_cr4(CR4_PKE) + _pkru(2 << 2) + READ_USER, [0x600d]),
    # without CR4.PKE the key is ignored
    (_cr4(CR4_PKE) + _pkru(1 << 2) + f"mov %cr4, %rax; and ${~CR4_PKE:#x}, %rax;"
     "mov %rax, %cr4;" + READ_USER, [0x600d]),
    # PKRU governs user pages only: a key-2 supervisor page is PKRS's
    (_cr4(CR4_PKE) + _pkru(0xFFFFFFFC) + READ_SUPER + WRITE_SUPER, [0x600d]),
    # an ordinary protection fault wins: a write to a read-only page is P|W without PK
    (_cr4(CR4_PKE) + _pkru(1 << 2) + WP_ON + "movl $1, 0x600000;", [0x14, 0x03, 0x600000]),
    # PKS: IA32_PKRS with CR4.PKS, the same rules for supervisor pages
    (_cr4(CR4_PKS) + _pkrs(1 << 4) + READ_SUPER, [0x14, 0x21, SUPER_PAGE]),
    (_cr4(CR4_PKS) + _pkrs(2 << 4) + WP_OFF + WRITE_SUPER, [0x600d]),
    (_cr4(CR4_PKS) + _pkrs(2 << 4) + WP_ON + WRITE_SUPER, [0x14, 0x23, SUPER_PAGE]),
    (_pkrs(1 << 4) + READ_SUPER, [0x600d]),                     # CR4.PKS = 0
    (_cr4(CR4_PKS) + _pkrs(0xFFFFFFFF) + READ_USER, [0x600d]),  # PKRS: user pages no
    # IA32_PKRS bits 63:32 are reserved: #GP(0)
    (f"mov ${MSR_PKRS:#x}, %ecx; mov $1, %edx; xor %eax, %eax; wrmsr;", [0x13]),
    # RDPKRU/WRPKRU: #UD without CR4.PKE, #GP(0) for ECX (and for WRPKRU EDX) not 0
    ("xor %ecx, %ecx; rdpkru;", [0x6]),
    (_cr4(CR4_PKE) + "mov $1, %ecx; rdpkru;", [0x13]),
    (_cr4(CR4_PKE) + "xor %ecx, %ecx; mov $1, %edx; wrpkru;", [0x13]),
    (_cr4(CR4_PKE) + _pkru(0x12345678) + "xor %ecx, %ecx; mov $-1, %edx; rdpkru;"
     "out %eax, $0xe0; mov %edx, %eax; out %eax, $0xe0;", [0x12345678, 0, 0x600d]),
])
def test_protection_keys(body, expected):
    assert _run(body) == expected


def test_cpuid_reports_pku_pks_and_ospke_from_cr4():
    leaf7 = "mov $7, %eax; xor %ecx, %ecx; cpuid; mov %ecx, %eax; out %eax, $0xe0;"
    before = _run(leaf7 + _cr4(CR4_PKE) + leaf7)[:2]
    assert before[0] & (1 << 3) and before[0] & (1 << 31)   # PKU, PKS
    assert not before[0] & (1 << 4) and before[1] & (1 << 4)  # OSPKE follows CR4.PKE
