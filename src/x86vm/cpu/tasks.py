"""Hardware task switches in legacy protected mode (SDM Vol. 3A §8.3, "Task Switching").

A switch starts from a far JMP or CALL to a TSS descriptor or a task gate, an interrupt or
exception through a task gate, or IRET with EFLAGS.NT set. It saves the running task's
registers into its TSS, loads the new task's from the new TSS (CR3, EFLAGS, EIP, the general
registers, LDTR, the segment registers), keeps the busy bits and the back link as the source
of the switch requires, loads TR and sets CR0.TS. Both the 32-bit TSS (Figure 8-2) and the
80286's 16-bit TSS (Figure 8-11) are handled.
"""

from __future__ import annotations

from dataclasses import dataclass

from x86vm.cpu.errors import GP, NP, TS, CpuFault
from x86vm.cpu.interrupts import parse_descriptor
from x86vm.cpu.state import CR0_PG, CR0_TS, RFLAGS_NT, RFLAGS_VM, Segment

_ES, _CS, _SS, _DS, _FS, _GS = range(6)
TSS16_AVAILABLE, TSS16_BUSY, TASK_GATE, TSS32_AVAILABLE, TSS32_BUSY = 0x1, 0x3, 0x5, 0x9, 0xB
BUSY = 0x2


@dataclass(frozen=True)
class TssLayout:
    """Where a TSS keeps each field (byte offsets), and its minimum limit."""
    ip: int
    flags: int
    gprs: int            # EAX/AX, then ECX, EDX, EBX, ESP, EBP, ESI, EDI
    segs: int            # ES, CS, SS, DS (, FS, GS)
    nsegs: int
    ldt: int
    width: int           # bytes per register slot
    min_limit: int
    cr3: int | None


TSS32 = TssLayout(ip=0x20, flags=0x24, gprs=0x28, segs=0x48, nsegs=6, ldt=0x60, width=4,
                  min_limit=0x67, cr3=0x1C)
TSS16 = TssLayout(ip=0x0E, flags=0x10, gprs=0x12, segs=0x22, nsegs=4, ldt=0x2A, width=2,
                  min_limit=0x2B, cr3=None)
SEG_SLOT = {4: (_ES, _CS, _SS, _DS), 6: (_ES, _CS, _SS, _DS, _FS, _GS)}


def layout(tss_type: int) -> TssLayout:
    return TSS32 if tss_type & 0x8 else TSS16


def through_gate_or_tss(cpu, selector: int, raw: int, call: bool) -> None:
    """A far JMP/CALL naming a TSS descriptor or a task gate (GDT/LDT): privilege checks
    (SDM Vol. 2A "JMP"/"CALL", task-switch paths), then the switch."""
    desc = parse_descriptor(raw, selector)
    if desc.dpl < cpu.cpl or desc.dpl < (selector & 3):
        raise CpuFault(GP, selector & 0xFFFC)
    if not desc.present:
        raise CpuFault(NP, selector & 0xFFFC)
    if desc.type == TASK_GATE:
        selector = (raw >> 16) & 0xFFFF
        if selector & 4 or selector & ~3 == 0:
            raise CpuFault(GP, selector & 0xFFFC)
    switch(cpu, selector, "call" if call else "jmp")


def switch(cpu, selector: int, source: str, error_code: int | None = None) -> None:
    """Switch to the task whose TSS ``selector`` names; ``source`` is "jmp", "call",
    "int" (an interrupt or exception through a task gate) or "iret"."""
    if selector & 4:
        raise CpuFault(TS if source == "iret" else GP, selector & 0xFFFC)
    raw, la = cpu.read_descriptor(selector)
    new = parse_descriptor(raw, selector)
    if new.s or new.type & ~BUSY not in (TSS16_AVAILABLE, TSS32_AVAILABLE):
        raise CpuFault(GP if source != "iret" else TS, selector & 0xFFFC)
    busy = bool(new.type & BUSY)
    if busy != (source == "iret"):
        raise CpuFault(GP if source != "iret" else TS, selector & 0xFFFC)
    if not new.present:
        raise CpuFault(NP, selector & 0xFFFC)
    lay = layout(new.type)
    if new.limit < lay.min_limit:
        raise CpuFault(TS, selector & 0xFFFC)

    old_selector = cpu.tr.selector
    flags = cpu.flags()
    if source == "iret":
        flags &= ~RFLAGS_NT
    _save(cpu, layout(cpu.tr.type), flags)
    if source in ("jmp", "iret"):
        _set_busy(cpu, old_selector, False)
    if source in ("call", "int"):
        cpu.write_sys(new.base, 2, old_selector)
    if source != "iret":
        _set_busy(cpu, selector, True)
    cpu.tr = Segment(selector, new.base, new.limit, new.type | BUSY, 0, new.dpl, 1, new.db, 0,
                     new.g)
    cpu.cr0 |= CR0_TS
    _load(cpu, lay, new.base, nested=source in ("call", "int"))
    if error_code is not None:
        cpu.push(error_code, lay.width)


def _save(cpu, lay: TssLayout, flags: int) -> None:
    base = cpu.tr.base
    mask = (1 << (8 * lay.width)) - 1
    cpu.write_sys(base + lay.ip, lay.width, cpu.rip & mask)
    cpu.write_sys(base + lay.flags, lay.width, flags & mask)
    for i in range(8):
        cpu.write_sys(base + lay.gprs + i * lay.width, lay.width, cpu.r[i] & mask)
    for slot, index in enumerate(SEG_SLOT[lay.nsegs]):
        cpu.write_sys(base + lay.segs + slot * lay.width, 2, cpu.seg[index].selector)


def _set_busy(cpu, selector: int, busy: bool) -> None:
    raw, la = cpu.read_descriptor(selector)
    access = (raw >> 40) & 0xFF
    cpu.write_sys(la + 5, 1, access | BUSY if busy else access & ~BUSY)


def _load(cpu, lay: TssLayout, base: int, nested: bool) -> None:
    """The new task's state; a fault while loading its segments is taken in the new task
    (SDM Vol. 3A §8.3 step 12, Table 8-1)."""
    if lay.cr3 is not None and cpu.cr0 & CR0_PG:
        cpu.set_cr3(cpu.read_sys(base + lay.cr3, 4))
    rd = cpu.read_sys
    ip = rd(base + lay.ip, lay.width)
    flags = rd(base + lay.flags, lay.width)
    gprs = [rd(base + lay.gprs + i * lay.width, lay.width) for i in range(8)]
    sels = [rd(base + lay.segs + slot * lay.width, 2) for slot in range(lay.nsegs)]
    ldt = rd(base + lay.ldt, 2)
    if lay.width == 2:   # an 80286 TSS: GPR upper halves become ones, FS and GS null
        gprs = [0xFFFF0000 | v for v in gprs]
        sels += [0, 0]
    if nested:
        flags |= RFLAGS_NT
    cpu.rip = ip
    cpu.set_flags(flags | 0x2)
    for i, value in enumerate(gprs):
        cpu.r[i] = value
    # selectors first, without checks, so a fault below leaves the new task's view
    for slot, index in enumerate(SEG_SLOT[6]):
        old = cpu.seg[index]
        cpu.seg[index] = Segment(sels[slot], old.base, old.limit, old.type, old.s, old.dpl,
                                 old.present, old.db, old.l, old.g, old.avl, old.unusable)
    _load_ldt(cpu, ldt)
    if flags & RFLAGS_VM:
        for slot, index in enumerate(SEG_SLOT[6]):
            cpu.set_segment(index, Segment(sels[slot], sels[slot] << 4, 0xFFFF,
                                           0xB if index == _CS else 0x3, 1, 3, 1))
        cpu.update_mode()
        return
    cs = sels[1]
    cpu.load_cs(_task_code(cpu, cs), cs & 3)
    try:
        cpu.load_segment(_SS, sels[2])
        for slot, index in enumerate(SEG_SLOT[6]):
            if index not in (_CS, _SS):
                cpu.load_segment(index, sels[slot])
    except CpuFault as exc:
        raise CpuFault(TS, exc.error_code if exc.error_code is not None else 0) from exc


def _task_code(cpu, selector: int) -> Segment:
    try:
        seg = cpu.code_segment(selector)
    except CpuFault as exc:
        raise CpuFault(TS, selector & 0xFFFC) from exc
    if seg.type & 0x4 and seg.dpl > (selector & 3) or not seg.type & 0x4 and \
            seg.dpl != (selector & 3):
        raise CpuFault(TS, selector & 0xFFFC)
    return seg


def _load_ldt(cpu, selector: int) -> None:
    if selector & ~3 == 0:
        cpu.ldtr = Segment(selector, 0, 0, 0x2, 0, 0, 0, unusable=1)
        return
    if selector & 4:
        raise CpuFault(TS, selector & 0xFFFC)
    raw, _ = cpu.read_descriptor(selector, TS)
    seg = parse_descriptor(raw, selector)
    if seg.s or seg.type != 0x2:
        raise CpuFault(TS, selector & 0xFFFC)
    if not seg.present:
        raise CpuFault(TS, selector & 0xFFFC)
    cpu.ldtr = seg
