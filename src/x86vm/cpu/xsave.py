"""XSAVE, XRSTOR, XGETBV, XSETBV for the two state components the CPU has: x87 (bit 0) and SSE
(bit 1) (SDM Vol. 1 ch. 13, Vol. 2 "XSAVE", "XRSTOR", "XGETBV", "XSETBV").

The standard (non-compacted) format only: the 512-byte legacy region laid out as FXSAVE's,
then the 64-byte XSAVE header whose first quadword is XSTATE_BV. CPUID leaf 0DH (cpuid.py)
reports XCR0 bits 0-1 and 576 bytes; XSAVEOPT, XSAVEC, XSAVES and XGETBV with ECX=1 are not
implemented (CPUID leaf 0DH sub-leaf 1 is 0) and stay #UD/#GP.
"""

from __future__ import annotations

import struct

from x86vm.cpu import x87 as X
from x86vm.cpu.errors import GP, NM, UD, CpuFault
from x86vm.cpu.fp import images
from x86vm.cpu.operand import linear
from x86vm.cpu.state import CR0_TS, CR4_OSXSAVE

XCR0_SUPPORTED = 0x3          # x87 | SSE
XSAVE_AREA_SIZE = 576         # legacy region + header
_HEADER = 512


def _checks(cpu) -> None:
    """#UD without CR4.OSXSAVE, #NM with CR0.TS (SDM Vol. 2 "XSAVE" Protected Mode
    Exceptions)."""
    if not cpu.cr4 & CR4_OSXSAVE:
        raise CpuFault(UD)
    if cpu.cr0 & CR0_TS:
        raise CpuFault(NM)


def _area(cpu, mem) -> int:
    la = linear(cpu, mem)
    if la & 63:
        raise CpuFault(GP, 0, "xsave area not 64-byte aligned")
    return la


def _rfbm(cpu) -> int:
    """The requested-feature bitmap: XCR0 AND EDX:EAX."""
    return cpu.xcr0 & ((cpu.r[2] & 0xFFFFFFFF) << 32 | cpu.r[0] & 0xFFFFFFFF)


def _nxmm(cpu) -> int:
    return 16 if cpu.code_bits == 64 else 8


def xinuse(cpu) -> int:
    """Which components are not in their initial configuration (SDM Vol. 1 §13.6)."""
    x = cpu.x87
    used = 0
    if (x.cw != X.CW_INIT or x.status_word or x.empty != 0xFF or x.fop or x.fip or x.fdp
            or x.fcs or x.fds or any(x.regs)):
        used |= 1
    if any(cpu.xmm[:_nxmm(cpu)]) or cpu.mxcsr != 0x1F80:
        used |= 2
    return used


def h_xsave(cpu, c) -> None:
    """XSAVE/XSAVE64: the requested components into the legacy region, MXCSR with SSE,
    then XSTATE_BV[i] = XINUSE[i] for each requested i (the rest of the header is left)."""
    insn, (mem,) = c
    _checks(cpu)
    la = _area(cpu, mem)
    rfbm = _rfbm(cpu)
    old_bv = cpu.read_mem(la + _HEADER, 8)
    nxmm = _nxmm(cpu)
    image = X.fxsave(cpu.x87, cpu.mxcsr, cpu.xmm[:nxmm], insn.mnemonic == "xsave64")
    pieces = []
    if rfbm & 1:
        pieces += [(0, image[0:24]), (32, image[32:160])]
    if rfbm & 2:
        pieces.append((160, image[160:160 + 16 * nxmm]))
    if rfbm & 6:        # MXCSR (and MXCSR_MASK) with SSE or AVX requested
        pieces.append((24, image[24:32]))
    for off, data in pieces:
        cpu.write_mem(la + off, len(data), int.from_bytes(data, "little"))
    cpu.write_mem(la + _HEADER, 8, (old_bv & ~rfbm) | (xinuse(cpu) & rfbm))


def h_xrstor(cpu, c) -> None:
    """XRSTOR/XRSTOR64: each requested component from the area when its XSTATE_BV bit is
    set, else to its initial configuration; MXCSR from the area when SSE is requested.
    #GP(0) for a compacted or non-zero-reserved header, XSTATE_BV bits outside XCR0, or MXCSR
    reserved bits — all before anything is loaded."""
    insn, (mem,) = c
    _checks(cpu)
    la = _area(cpu, mem)
    rfbm = _rfbm(cpu)
    header = cpu.read_mem(la + _HEADER, 24).to_bytes(24, "little")
    xstate_bv, xcomp_bv, reserved = struct.unpack("<QQQ", header)
    if xcomp_bv or reserved or xstate_bv & ~cpu.xcr0:
        raise CpuFault(GP, 0, "xrstor: bad header")
    nxmm = _nxmm(cpu)
    legacy = cpu.read_mem(la, 160 + 16 * nxmm).to_bytes(160 + 16 * nxmm, "little")
    mxcsr = images.fxrstor_mxcsr(legacy)
    if rfbm & 6 and mxcsr & ~images.FXSAVE_MXCSR_MASK:
        raise CpuFault(GP, 0, "xrstor: reserved MXCSR bits")
    x = cpu.x87
    if rfbm & 1:
        if xstate_bv & 1:
            X.fxrstor(x, legacy, 0, insn.mnemonic == "xrstor64")
        else:
            x.finit()
            x.regs[:] = [0] * 8
    if rfbm & 2:
        if xstate_bv & 2:
            cpu.xmm[:nxmm] = [int.from_bytes(legacy[160 + 16 * i:176 + 16 * i], "little")
                              for i in range(nxmm)]
        else:
            cpu.xmm[:nxmm] = [0] * nxmm
    if rfbm & 6:
        cpu.mxcsr = mxcsr


def h_xgetbv(cpu, c) -> None:
    """XGETBV: EDX:EAX = XCR0 (ECX=0); any other ECX is #GP(0)."""
    if not cpu.cr4 & CR4_OSXSAVE:
        raise CpuFault(UD)
    if cpu.r[1] & 0xFFFFFFFF:
        raise CpuFault(GP, 0, "xgetbv: unsupported XCR")
    cpu.r[0], cpu.r[2] = cpu.xcr0 & 0xFFFFFFFF, cpu.xcr0 >> 32


def h_xsetbv(cpu, c) -> None:
    """XSETBV: XCR0 = EDX:EAX at CPL 0 with ECX=0; bit 0 must be set and no unsupported
    bit (#GP(0))."""
    if not cpu.cr4 & CR4_OSXSAVE:
        raise CpuFault(UD)
    value = (cpu.r[2] & 0xFFFFFFFF) << 32 | cpu.r[0] & 0xFFFFFFFF
    if cpu.cpl != 0 or cpu.r[1] & 0xFFFFFFFF or not value & 1 or value & ~XCR0_SUPPORTED:
        raise CpuFault(GP, 0, "xsetbv")
    cpu.xcr0 = value


XSAVE_HELPERS = {"xsave": h_xsave, "xsave64": h_xsave, "xrstor": h_xrstor,
                 "xrstor64": h_xrstor, "xgetbv": h_xgetbv, "xsetbv": h_xsetbv}
