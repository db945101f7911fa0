"""Far transfers across privilege levels in protected mode (SDM Vol. 3A §5.8).

* far CALL / JMP through a call gate (§5.8.3-§5.8.6): the gate names the code segment and
  entry point; a CALL to a more privileged non-conforming segment switches to the stack the
  TSS holds for that level and copies the gate's parameter count from the old stack;
* far RET to an outer level (§5.8.6, "RET" in Vol. 2B): back to the caller's stack, and data
  segment registers the outer level may not use become null — as IRET to an outer level does.

Task gates and TSS descriptors as far-transfer targets are in :mod:`x86vm.cpu.tasks`.
"""

from __future__ import annotations

from x86vm.cpu.errors import GP, NP, SS, TS, CpuFault
from x86vm.cpu.interrupts import parse_descriptor
from x86vm.cpu.state import Segment

_ES, _CS, _SS, _DS, _FS, _GS = range(6)
CALL_GATE16, CALL_GATE32 = 0x4, 0xC


def _target_code(cpu, selector: int) -> tuple[Segment, int, int]:
    """The code segment a gate names: (segment, raw descriptor, its linear address)."""
    if selector & ~3 == 0:
        raise CpuFault(GP, 0)
    raw, la = cpu.read_descriptor(selector)
    seg = parse_descriptor(raw, selector)
    if not seg.s or not seg.type & 0x8 or seg.dpl > cpu.cpl:
        raise CpuFault(GP, selector & 0xFFFC)
    if not seg.present:
        raise CpuFault(NP, selector & 0xFFFC)
    return seg, raw, la


def through_call_gate(cpu, selector: int, raw: int, call: bool) -> None:
    """A far CALL or JMP whose selector names a call gate (``raw``, legacy modes)."""
    gate = parse_descriptor(raw, selector)
    if gate.dpl < cpu.cpl or gate.dpl < (selector & 3):
        raise CpuFault(GP, selector & 0xFFFC)
    if not gate.present:
        raise CpuFault(NP, selector & 0xFFFC)
    target = (raw >> 16) & 0xFFFF
    cs, craw, cla = _target_code(cpu, target)
    wide = gate.type == CALL_GATE32
    size = 4 if wide else 2
    offset = (raw & 0xFFFF) | (((raw >> 48) & 0xFFFF) << 16 if wide else 0)
    conforming = cs.type & 0x4
    if not call:
        if not conforming and cs.dpl != cpu.cpl:
            raise CpuFault(GP, target & 0xFFFC)
        cpu._set_accessed(cla, craw)
        cpu.load_cs(cs, cpu.cpl)
        cpu.rip = offset
        return
    cpu._set_accessed(cla, craw)
    old_cs, old_ip = cpu.seg[_CS].selector, cpu.rip
    if conforming or cs.dpl == cpu.cpl:
        cpu.push(old_cs, size)
        cpu.push(old_ip, size)
        cpu.load_cs(cs, cpu.cpl)
        cpu.rip = offset
        return
    _call_inward(cpu, cs, offset, size, (raw >> 32) & 0x1F, old_cs, old_ip)


def _call_inward(cpu, cs: Segment, offset: int, size: int, count: int, old_cs: int,
                 old_ip: int) -> None:
    """CALL to a more privileged level: new stack from the TSS, the caller's SS:ESP and
    ``count`` parameters on it, then the return address (SDM Vol. 3A Figure 5-13)."""
    new_cpl = cs.dpl
    new_ss, new_sp = cpu.tss_stack(new_cpl)
    old_ss, old_sp, old_bits = cpu.seg[_SS].selector, cpu.r[4], cpu.stack_bits
    old_mask = 0xFFFF if old_bits == 16 else 0xFFFFFFFF
    old_base = cpu.sbase[_SS]
    params = [cpu.read_mem((old_base + ((old_sp + i * size) & old_mask)) & 0xFFFFFFFF, size)
              for i in range(count)]
    saved = (cpu.seg[_CS], cpu.seg[_SS], cpu.r[4])
    cpu.load_cs(cs, new_cpl)
    try:
        _load_stack(cpu, new_ss)
        cpu.r[4] = new_sp if cpu.stack_bits != 16 else (cpu.r[4] & ~0xFFFF) | (new_sp & 0xFFFF)
        cpu.push(old_ss, size)
        cpu.push(old_sp, size)
        for value in reversed(params):
            cpu.push(value, size)
        cpu.push(old_cs, size)
        cpu.push(old_ip, size)
    except CpuFault:
        cpu.load_cs(saved[0])          # the caller's state, for the fault's frame
        cpu.set_segment(_SS, saved[1])
        cpu.r[4] = saved[2]
        raise
    cpu.rip = offset & (0xFFFFFFFF if size == 4 else 0xFFFF)


def _load_stack(cpu, selector: int) -> None:
    """SS for a privilege change: its faults are #TS (SDM Vol. 3A Table 7-1)."""
    try:
        cpu.load_segment(_SS, selector)
    except CpuFault as exc:
        if exc.vector == SS:
            raise
        raise CpuFault(TS, selector & 0xFFFC) from exc


def return_outward(cpu, cs_sel: int, offset: int, size: int, release: int) -> None:
    """Far RET to a less privileged level (RPL of the popped CS > CPL): SS:ESP come next on
    the stack (after ``release`` parameter bytes), then the data segments are checked."""
    cs = cpu.code_segment(cs_sel)
    rpl = cs_sel & 3
    if cs.type & 0x4 and cs.dpl > rpl or not cs.type & 0x4 and cs.dpl != rpl:
        raise CpuFault(GP, cs_sel & 0xFFFC)
    smask = 0xFFFF if cpu.stack_bits == 16 else 0xFFFFFFFF
    cpu._set_sp((cpu.r[4] + release) & smask)
    sp = cpu.pop(size)
    ss = cpu.pop(size) & 0xFFFF
    cpu.load_cs(cs, rpl)
    cpu.load_segment(_SS, ss)
    smask = 0xFFFF if cpu.stack_bits == 16 else 0xFFFFFFFF
    cpu._set_sp((sp + release) & smask)
    cpu.rip = offset & (0xFFFF if size == 2 else 0xFFFFFFFF)
    cpu.null_outer_data_segments()
