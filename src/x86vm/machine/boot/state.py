"""The register presets a boot loader hands to a vCPU at the guest's entry point.

The register contract itself (segments, :class:`RegisterState`, CR/EFER bits) is
:mod:`x86vm.cpu.state`, shared by every backend; this module keeps the presets of the boot
protocols: real mode, flat 32-bit protected mode, 64-bit long mode.
"""

from __future__ import annotations

from dataclasses import replace

from x86vm.cpu.state import (  # noqa: F401  (re-exported for the loaders)
    CR0_ET,
    CR0_NE,
    CR0_PE,
    CR0_PG,
    CR4_PAE,
    EFER_LMA,
    EFER_LME,
    GPR_NAMES,
    NULL_LDT,
    REAL_CODE,
    REAL_DATA,
    TSS_SEGMENT,
    EntryState,
    RegisterState,
    Segment,
    TableRegister,
)

FLAT32_CODE = Segment(selector=0x10, limit=0xFFFFFFFF, type=0xB, db=1, g=1)
FLAT32_DATA = Segment(selector=0x18, limit=0xFFFFFFFF, type=0x3, db=1, g=1)
LONG64_CODE = Segment(selector=0x10, limit=0xFFFFFFFF, type=0xB, l=1, g=1)
LONG64_DATA = FLAT32_DATA


def real_mode(cs: int, ip: int, sp: int = 0) -> EntryState:
    """Real mode at CS:IP with DS=ES=SS=CS (how a flat binary or boot sector starts)."""
    code = replace(REAL_CODE, selector=cs, base=cs << 4)
    data = replace(REAL_DATA, selector=cs, base=cs << 4)
    return EntryState(rip=ip, gprs={"rsp": sp}, cs=code, ds=data, es=data, fs=data, gs=data,
                      ss=data)


def flat_protected32(eip: int, gdt: TableRegister, **gprs: int) -> EntryState:
    """32-bit protected mode, paging off, flat 4 GiB segments (Multiboot §3.2, PVH)."""
    d = FLAT32_DATA
    return EntryState(rip=eip, gprs=dict(gprs), cs=FLAT32_CODE, ds=d, es=d, fs=d, gs=d, ss=d,
                      gdt=gdt, cr0=CR0_PE | CR0_ET)


def long_mode64(rip: int, gdt: TableRegister, cr3: int, **gprs: int) -> EntryState:
    """64-bit mode with 4-level paging at ``cr3`` (Linux boot.rst "64-bit Boot Protocol")."""
    d = LONG64_DATA
    return EntryState(rip=rip, gprs=dict(gprs), cs=LONG64_CODE, ds=d, es=d, fs=d, gs=d, ss=d,
                      gdt=gdt, cr0=CR0_PE | CR0_ET | CR0_NE | CR0_PG, cr3=cr3, cr4=CR4_PAE,
                      efer=EFER_LME | EFER_LMA)
