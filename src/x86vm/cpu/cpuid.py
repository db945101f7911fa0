"""CPUID: one consistent CPU model that describes exactly what this CPU implements.

Leaves (SDM Vol. 2A "CPUID", Tables 3-8 to 3-20): 0 (vendor, max leaf), 1 (family/model,
features), 7 (extended features), 0DH (XSAVE: x87 and SSE components, standard format only),
0x80000000-0x80000008 (extended features, brand, address sizes); leaves 2-6 and 8-0CH are 0.
The x87 FPU, FXSAVE/FXRSTOR (cpu/x87_exec.py) and XSAVE/XRSTOR (cpu/xsave.py) are implemented;
MMX, SSE, SSE2, SSE3, SSSE3, SSE4.1 and SSE4.2 are executed (cpu/sse_exec.py,
cpu/sse_fexec.py, cpu/sse42.py); a feature bit is set only once its instructions are.
"""

from __future__ import annotations

VENDOR = b"GenuineIntel"
BRAND = b"x86vm pure-Python CPU".ljust(48, b"\0")
MAX_LEAF = 0xD
MAX_EXT_LEAF = 0x80000008
# leaf 1 EDX: FPU(0) PSE(3) TSC(4) MSR(5) PAE(6) CX8(8) APIC(9) SEP(11) PGE(13) CMOV(15)
# PAT(16) FXSR(24). APIC: the board's local APIC (devices/lapic.py) at IA32_APIC_BASE;
# without the bit Linux keeps the 8259 alone ("APIC disabled by BIOS") even when the MP/ACPI
# tables list it.
LEAF1_EDX = (1 << 0) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (1 << 9) | \
    (1 << 11) | (1 << 13) | (1 << 15) | (1 << 16) | (1 << 24)
LEAF1_EDX |= (1 << 23) | (1 << 25) | (1 << 26)      # MMX(23) SSE(25) SSE2(26)
LEAF1_EDX |= 1 << 19    # CLFSH: CLFLUSH (cpu/cacheline.py), a 64-byte line (EBX[15:8] = 8)
LEAF1_EBX = (1 << 16) | (8 << 8)   # 1 logical processor; CLFLUSH line size in 8-byte units
# leaf 1 ECX: CX16(13) MOVBE(22) POPCNT(23) TSC-DEADLINE(24) XSAVE(26) (OSXSAVE(27) from CR4:
# system.py). TSC-deadline: the local APIC timer's mode (devices/lapic.py, IA32_TSC_DEADLINE);
# Linux then skips calibrating the APIC timer against the PIT (200 ms of guest time spinning)
LEAF1_ECX = (1 << 13) | (1 << 22) | (1 << 23) | (1 << 24) | (1 << 26)
LEAF1_ECX |= (1 << 0) | (1 << 9) | (1 << 19) | (1 << 20)   # SSE3 SSSE3 SSE4.1 SSE4.2
# leaf 0DH sub-leaf 0: XCR0 may hold x87|SSE; 576 bytes for them (cpu/xsave.py)
XSAVE_LEAF0 = (0x3, 576, 576, 0)
# leaf 7 EBX: BMI1(3) SMEP(7) BMI2(8) ADX(19) SMAP(20) CLFLUSHOPT(23) CLWB(24)
LEAF7_EBX = (1 << 3) | (1 << 7) | (1 << 8) | (1 << 19) | (1 << 20) | (1 << 23) | (1 << 24)
# leaf 7 ECX: UMIP(2) (cpu/system.py), PKU(3) PKS(31): protection keys (cpu/mmu.py; OSPKE(4)
# from CR4: system.py); XSAVE does not manage PKRU here (XCR0 bit 9 stays reserved, so a
# kernel drops PKU). LA57(16): 5-level paging (cpu/paging.py, cpu/mmu.py), as QEMU's ``-cpu
# max`` has it; a Cpu with ``max_linear_bits = 48`` reports neither it nor 57 in 0x80000008
LEAF7_ECX_LA57 = 1 << 16
LEAF7_ECX = (1 << 2) | (1 << 3) | LEAF7_ECX_LA57 | (1 << 31)
# 0x80000001 EDX: SYSCALL(11) NX(20) RDTSCP(27) LM(29); ECX: LAHF/SAHF(0) ABM/LZCNT(5)
EXT1_EDX = (1 << 11) | (1 << 20) | (1 << 27) | (1 << 29)
EXT1_ECX = (1 << 0) | (1 << 5)
FAMILY_MODEL = (6 << 8) | (0xF << 4) | 1       # family 6, model 15, stepping 1
MAX_LINEAR_BITS = 57                            # with LA57 (SDM Vol. 3A §4.1.4)
ADDRESS_SIZES = (MAX_LINEAR_BITS << 8) | 40     # 57-bit linear, 40-bit physical


def _regs(data: bytes) -> tuple[int, ...]:
    return tuple(int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4))


def cpuid(leaf: int, subleaf: int) -> tuple[int, int, int, int]:
    """(EAX, EBX, ECX, EDX) of ``leaf``/``subleaf``."""
    if leaf == 0:
        b, d, c = _regs(VENDOR)
        return MAX_LEAF, b, c, d
    if leaf == 1:
        return FAMILY_MODEL, LEAF1_EBX, LEAF1_ECX, LEAF1_EDX
    if leaf == 7:
        return (0, LEAF7_EBX, LEAF7_ECX, 0) if subleaf == 0 else (0, 0, 0, 0)
    if leaf == 0xD:
        return XSAVE_LEAF0 if subleaf == 0 else (0, 0, 0, 0)
    if leaf == 0x80000000:
        return MAX_EXT_LEAF, 0, 0, 0
    if leaf == 0x80000001:
        return 0, 0, EXT1_ECX, EXT1_EDX
    if 0x80000002 <= leaf <= 0x80000004:
        i = (leaf - 0x80000002) * 16
        return _regs(BRAND[i:i + 16])  # type: ignore[return-value]
    if leaf == 0x80000008:
        return ADDRESS_SIZES, 0, 0, 0
    if leaf <= MAX_LEAF or 0x80000000 <= leaf <= MAX_EXT_LEAF:
        return 0, 0, 0, 0
    # beyond the maximum: Intel returns the highest basic leaf's values
    return cpuid(MAX_LEAF, subleaf)
