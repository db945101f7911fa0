"""Segment limit and type checks on memory accesses (SDM Vol. 3A §5.3 "Limit Checking",
§5.4 "Type Checking"; Vol. 2 "Protected Mode Exceptions": #GP(0), #SS(0) for SS).

Checking every access would cost the common case — flat 4 GiB writable segments, and
64-bit mode, where limits are not checked — for nothing. So the vCPU keeps a mask of the
segments that need checks (:func:`segment_check_mask`, recomputed whenever a segment, CR0
or the mode changes, and part of the translation key): translated code calls
:func:`check_access` only for accesses through those segments.
"""

from __future__ import annotations

from x86vm.cpu.errors import GP, SS, CpuFault
from x86vm.cpu.state import CR0_PE, RFLAGS_VM

_CS, _SS = 1, 2
FLAT = 0xFFFFFFFF


def _needs_checks(index: int, seg) -> bool:
    if index == _CS:
        return True        # writes through CS always fault; reads need a readable segment
    if seg.unusable or not seg.present or not seg.s:
        return True
    writable_data = seg.type & 0xA == 0x2
    return not (writable_data and not seg.type & 0x4 and seg.limit == FLAT)


def _checks_apply(cpu) -> bool:
    """Not in real mode, virtual-8086 mode (limits of 64 KiB wrap-checks are not modelled)
    or 64-bit mode."""
    return bool(cpu.cr0 & CR0_PE) and not cpu.fl & RFLAGS_VM and cpu.code_bits != 64


def segment_check_mask(cpu) -> int:
    """Bit i set: accesses through segment register i are checked."""
    if not _checks_apply(cpu):
        return 0
    mask = 0
    for i, seg in enumerate(cpu.seg):
        if _needs_checks(i, seg):
            mask |= 1 << i
    return mask


def segment_check_bit(cpu, index: int, seg) -> int:
    """The bit of :func:`segment_check_mask` that ``seg`` in register ``index`` gives."""
    return 1 << index if _checks_apply(cpu) and _needs_checks(index, seg) else 0


def check_access(cpu, index: int, offset: int, size: int, write: bool) -> None:
    """#GP(0) (#SS(0) through SS) unless ``size`` bytes at ``offset`` in segment ``index``
    may be read (or written)."""
    seg = cpu.seg[index]
    fault = SS if index == _SS else GP
    if seg.unusable or not seg.s or (seg.selector & ~3 == 0 and index != _CS):
        raise CpuFault(fault, 0)
    code = seg.type & 0x8
    if write and (code or not seg.type & 0x2):
        raise CpuFault(GP, 0)
    if not write and code and not seg.type & 0x2:
        raise CpuFault(GP, 0)
    last = offset + size - 1
    if not code and seg.type & 0x4:        # expand-down: above the limit, up to 64K or 4G
        top = FLAT if seg.db else 0xFFFF
        if offset <= seg.limit or last > top:
            raise CpuFault(fault, 0)
    elif last > seg.limit:
        raise CpuFault(fault, 0)
