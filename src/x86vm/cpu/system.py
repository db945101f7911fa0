"""System instructions (SDM Vol. 2, Vol. 3A ch. 2, 5, 6): control registers, descriptor
tables, far transfers, software interrupts, HLT/CLI/STI, CPUID, MSRs, SYSCALL/SYSRET."""

from __future__ import annotations

from x86vm.cpu import gates, tasks
from x86vm.cpu.cpuid import LEAF7_ECX_LA57, VENDOR, cpuid
from x86vm.cpu.errors import BP, DB, GP, OF, UD, CpuFault
from x86vm.cpu.interrupts import parse_descriptor
from x86vm.cpu.operand import MASK, Far, Mem, Reg, linear, read, write, write_reg
from x86vm.cpu.paging import canonical
from x86vm.cpu.state import (
    CR0_PE,
    CR0_TS,
    CR4_DE,
    CR4_LA57,
    CR4_OSXSAVE,
    CR4_PAE,
    CR4_PKE,
    CR4_UMIP,
    EFER_LMA,
    EFER_SCE,
    MSR_CSTAR,
    MSR_EFER,
    MSR_FS_BASE,
    MSR_GS_BASE,
    MSR_IA32_PKRS,
    MSR_IA32_TSC,
    MSR_KERNEL_GS_BASE,
    MSR_LSTAR,
    MSR_SFMASK,
    MSR_STAR,
    MSR_TSC_AUX,
    RFLAGS_AC,
    RFLAGS_IF,
    RFLAGS_RF,
    RFLAGS_TF,
    RFLAGS_VM,
    STATE_MSRS,
    Segment,
    TableRegister,
)

M64 = 0xFFFFFFFFFFFFFFFF
FS, GS = 4, 5
VENDOR_AMD = b"AuthenticAMD"
VENDORS = (VENDOR, VENDOR_AMD)
KNOWN_MSRS = frozenset(STATE_MSRS) | {MSR_EFER, MSR_FS_BASE, MSR_GS_BASE, 0x8B, 0x3A, 0xFE,
                                      0x2FF, 0x17, 0xCE, 0x140, 0x1D9, 0x9E,
                                      0xC0011029, 0xC0010015, MSR_IA32_PKRS}
MTRRS = range(0x200, 0x270)
# AMD's four legacy performance counters and their event selects (APM Vol. 2 §13.2.1), there
# on every AMD CPU without a CPUID bit; here they hold what is written and never count
AMD_LEGACY_PERF = range(0xC0010000, 0xC0010008)
MSR_IA32_MCG_CAP = 0x179   # machine-check capabilities: read-only; 0 = no error-reporting banks
# WRMSR of a non-canonical address to these is #GP(0) (SDM Vol. 2B "WRMSR"; AMD APM Vol. 2
# §6.1.2 adds CSTAR): FS/GS base, KERNEL_GS_BASE, LSTAR, CSTAR, SYSENTER_ESP/EIP
CANONICAL_MSRS = frozenset((MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE, MSR_LSTAR,
                            MSR_CSTAR, 0x175, 0x176))


def _iopl(cpu) -> int:
    return (cpu.fl >> 12) & 3


def _need_cpl0(cpu) -> None:
    if cpu.cpl != 0:
        raise CpuFault(GP, 0)


def check_io(cpu, port: int, size: int) -> None:
    """I/O permission (SDM Vol. 1 §19.5): CPL ≤ IOPL, else the TSS I/O bitmap."""
    if not cpu.cr0 & CR0_PE:
        return
    if cpu.cpl <= _iopl(cpu) and not cpu.fl & RFLAGS_VM:
        return
    tr = cpu.tr
    if tr.limit < 0x67:
        raise CpuFault(GP, 0)
    base = cpu.read_sys(tr.base + 0x66, 2)
    at = base + port // 8
    if at + 1 > tr.limit:
        raise CpuFault(GP, 0)
    bits = cpu.read_sys(tr.base + at, 2)
    if (bits >> (port % 8)) & ((1 << size) - 1):
        raise CpuFault(GP, 0)


# -- moves to and from system registers -------------------------------------------------------

def h_mov(cpu, c) -> None:
    insn, (dst, src) = c
    if type(dst) is Reg and dst.cls == "seg":
        if dst.num == 1 or dst.num > 5:
            raise CpuFault(UD)
        cpu.load_segment(dst.num, read(cpu, src, 2))
        if dst.num == 2:
            cpu.shadow = cpu.movss_shadow = cpu.attn = True
        return
    if type(src) is Reg and src.cls == "seg":
        if src.num > 5:
            raise CpuFault(UD)
        write(cpu, dst, cpu.seg[src.num].selector, 2 if type(dst) is Mem else None)
        return
    if type(dst) is Reg and dst.cls == "cr":
        _need_cpl0(cpu)
        v = cpu.r[src.num] & (M64 if cpu.code_bits == 64 else 0xFFFFFFFF)
        n = dst.num
        if n == 0:
            cpu.set_cr0(v)
        elif n == 2:
            cpu.cr2 = v
        elif n == 3:
            cpu.set_cr3(v)
        elif n == 4:
            _check_cr4(cpu, v)
            cpu.set_cr4(v)
        elif n == 8:
            cpu.cr8 = v & 0xF
            apic = getattr(cpu, "apic", None)  # CR8 is the local APIC's TPR[7:4]
            if apic is not None:
                apic.cr8 = cpu.cr8
                cpu.irq_check = True
        else:
            raise CpuFault(UD)
        return
    if type(src) is Reg and src.cls == "cr":
        _need_cpl0(cpu)
        n = src.num
        apic = getattr(cpu, "apic", None)
        if n == 8 and apic is not None:
            cpu.cr8 = apic.cr8
        values = {0: cpu.cr0, 2: cpu.cr2, 3: cpu.cr3, 4: cpu.cr4, 8: cpu.cr8}
        if n not in values:
            raise CpuFault(UD)
        cpu.r[dst.num] = values[n] & (M64 if cpu.code_bits == 64 else 0xFFFFFFFF)
        return
    if type(dst) is Reg and dst.cls == "dr":
        idx = _debug_register(cpu, dst.num)
        v = cpu.r[src.num] & (M64 if cpu.code_bits == 64 else 0xFFFFFFFF)
        if idx >= 4:
            if v >> 32:            # DR6/DR7 bits 63:32 must be 0
                raise CpuFault(GP, 0)
            # DR6: B0-B3, BD, BS, BT writable, the rest reads 1 (bit 12: 0); DR7: bit 10
            # reads 1, bits 11, 12, 14, 15 read 0 (SDM Vol. 3B §18.2.3, §18.2.4)
            v = DR6_FIXED_1 | (v & 0xE00F) if idx == 4 else DR7_FIXED_1 | (v & 0xFFFF23FF)
        cpu.dr[idx] = v
        if idx != 4:
            cpu.set_guest_breakpoints()
        return
    if type(src) is Reg and src.cls == "dr":
        idx = _debug_register(cpu, src.num)
        cpu.r[dst.num] = cpu.dr[idx] & (M64 if cpu.code_bits == 64 else 0xFFFFFFFF)
        return
    size = dst.size
    write(cpu, dst, read(cpu, src, size) & MASK[size])


DR6_FIXED_1, DR7_FIXED_1 = 0xFFFF0FF0, 0x400
DR6_BD, DR7_GD = 1 << 13, 1 << 13


def _debug_register(cpu, num: int) -> int:
    """Index in ``cpu.dr`` (DR0-3, DR6, DR7) of MOV DRn: CPL 0 only (#GP(0)); DR4/DR5 alias
    DR6/DR7 unless CR4.DE = 1, where they are #UD (SDM Vol. 3B §18.2.2), as DR8-15 are.
    With DR7.GD set the access is a general-detect #DB fault instead: DR6.BD set, GD
    cleared for the handler (§18.2.4)."""
    _need_cpl0(cpu)
    if num in (4, 5) and cpu.cr4 & CR4_DE or num > 7:
        raise CpuFault(UD)
    if cpu.dr[5] & DR7_GD:
        cpu.dr[5] &= ~DR7_GD
        cpu.dr[4] = (cpu.dr[4] & ~0xF) | DR6_BD
        raise CpuFault(DB)
    return {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 4, 7: 5}[num]


# CR4 bits this CPU implements (SDM Vol. 3A §2.5): VME..OSXMMEXCPT (0-10), UMIP, LA57,
# OSXSAVE, SMEP, SMAP, PKE, PKS. Every other bit — reserved, or a feature CPUID does not
# report (VMXE, SMXE, FSGSBASE, PCIDE, ...; LA57 on a 48-bit model) — is #GP(0) on MOV to
# CR4 (Vol. 2B "MOV—Move to/from Control Registers"), as are clearing PAE and changing LA57
# in IA-32e mode (§4.1.1: software leaves IA-32e mode to switch between 4- and 5-level).
CR4_IMPLEMENTED = 0xFFF | CR4_LA57 | (1 << 18) | (1 << 20) | (1 << 21) | (1 << 22) | (1 << 24)


def _check_cr4(cpu, value: int) -> None:
    if value & ~CR4_IMPLEMENTED or (value & CR4_LA57 and cpu.max_linear_bits < 57):
        raise CpuFault(GP, 0)
    if cpu.efer & EFER_LMA and (not value & CR4_PAE or (value ^ cpu.cr4) & CR4_LA57):
        raise CpuFault(GP, 0)


# -- descriptor tables ---------------------------------------------------------------------

def _table_operand(cpu, insn, mem) -> tuple[int, int]:
    if type(mem) is not Mem:
        raise CpuFault(UD)
    la = linear(cpu, mem)
    limit = cpu.read_mem(la, 2)
    if cpu.code_bits == 64:
        base = cpu.read_mem(la + 2, 8)
    else:
        base = cpu.read_mem(la + 2, 4)
        if insn.operand_size == 16:
            base &= 0xFFFFFF
    return base, limit


def h_lgdt(cpu, c) -> None:
    insn, (mem,) = c
    _need_cpl0(cpu)
    base, limit = _table_operand(cpu, insn, mem)
    if cpu.code_bits == 64 and not _canonical(cpu, base):
        raise CpuFault(GP, 0)   # a non-canonical base (KVM's emulator and hardware agree)
    if insn.mnemonic == "lgdt":
        cpu.gdtr = TableRegister(base, limit)
    else:
        cpu.idtr = TableRegister(base, limit)


def _umip(cpu) -> None:
    """CR4.UMIP: SGDT, SIDT, SLDT, SMSW and STR are #GP(0) at CPL > 0 (SDM Vol. 3A §2.5)."""
    if cpu.cr4 & CR4_UMIP and cpu.cpl > 0:
        raise CpuFault(GP, 0)


def h_sgdt(cpu, c) -> None:
    insn, (mem,) = c
    if type(mem) is not Mem:
        raise CpuFault(UD)
    _umip(cpu)
    t = cpu.gdtr if insn.mnemonic == "sgdt" else cpu.idtr
    la = linear(cpu, mem)
    cpu.write_mem(la, 2, t.limit)
    if cpu.code_bits == 64:
        cpu.write_mem(la + 2, 8, t.base)
    else:
        cpu.write_mem(la + 2, 4, t.base & 0xFFFFFFFF)


def _system_descriptor(cpu, selector: int) -> tuple[Segment, int]:
    raw, la = cpu.read_descriptor(selector)
    seg = parse_descriptor(raw, selector)
    if cpu.efer & EFER_LMA:
        high = cpu.read_sys(la + 8, 8)
        seg = Segment(seg.selector, seg.base | ((high & 0xFFFFFFFF) << 32), seg.limit,
                      seg.type, seg.s, seg.dpl, seg.present, seg.db, seg.l, seg.g, seg.avl)
    return seg, la


def h_ltr(cpu, c) -> None:
    insn, (src,) = c
    _need_cpl0(cpu)
    if not cpu.cr0 & CR0_PE or cpu.fl & RFLAGS_VM:
        raise CpuFault(UD)
    sel = read(cpu, src, 2) & 0xFFFF
    if sel & ~3 == 0 or sel & 4:
        raise CpuFault(GP, sel & 0xFFFC)
    seg, la = _system_descriptor(cpu, sel)
    if insn.mnemonic == "ltr":
        if seg.s or seg.type not in (1, 9):
            raise CpuFault(GP, sel & 0xFFFC)
        if not seg.present:
            raise CpuFault(11, sel & 0xFFFC)
        _check_canonical_base(cpu, seg, sel)
        cpu.write_sys(la + 5, 1, cpu.read_sys(la + 5, 1) | 2)   # busy
        cpu.tr = Segment(sel, seg.base, seg.limit, seg.type | 2, 0, seg.dpl, 1, seg.db, 0,
                         seg.g)
    else:
        if seg.s or seg.type != 2:
            raise CpuFault(GP, sel & 0xFFFC)
        if seg.present:
            _check_canonical_base(cpu, seg, sel)
        cpu.ldtr = seg


def _check_canonical_base(cpu, seg: Segment, sel: int) -> None:
    """In IA-32e mode the 16-byte TSS/LDT descriptor's base must be canonical, else
    #GP(selector) (as KVM's emulator loads it; kvm-unit-tests la57 expects the fault)."""
    if cpu.efer & EFER_LMA and not _canonical(cpu, seg.base):
        raise CpuFault(GP, sel & 0xFFFC)


def h_lldt(cpu, c) -> None:
    insn, (src,) = c
    _need_cpl0(cpu)
    if not cpu.cr0 & CR0_PE or cpu.fl & RFLAGS_VM:
        raise CpuFault(UD)
    sel = read(cpu, src, 2) & 0xFFFF
    if sel & ~3 == 0:
        cpu.ldtr = Segment(sel, 0, 0, 2, 0, 0, 0, unusable=1)
        return
    h_ltr(cpu, c)


def h_sldt(cpu, c) -> None:
    insn, (dst,) = c
    if cpu.cr0 & CR0_PE and not cpu.fl & RFLAGS_VM:   # real and VM86 mode: #UD
        _umip(cpu)
    v = cpu.ldtr.selector if insn.mnemonic == "sldt" else cpu.tr.selector
    write(cpu, dst, v, 2 if type(dst) is Mem else None)


def h_smsw(cpu, c) -> None:
    insn, (dst,) = c
    _umip(cpu)
    write(cpu, dst, cpu.cr0 & (0xFFFF if type(dst) is Mem else M64),
          2 if type(dst) is Mem else None)


def h_lmsw(cpu, c) -> None:
    insn, (src,) = c
    _need_cpl0(cpu)
    v = read(cpu, src, 2) & 0xF
    cpu.set_cr0((cpu.cr0 & ~0xE) | v | (cpu.cr0 & CR0_PE))


def h_clts(cpu, c) -> None:
    _need_cpl0(cpu)
    cpu.cr0 &= ~CR0_TS


def h_invlpg(cpu, c) -> None:
    insn, (mem,) = c
    _need_cpl0(cpu)
    la = linear(cpu, mem)
    cpu.flush_page(la)
    cpu.translator.flush_page(la)


def h_nop_priv(cpu, c) -> None:
    _need_cpl0(cpu)


# -- far transfers -------------------------------------------------------------------------------

def is_far(insn, op) -> bool:
    """A far JMP/CALL: a pointer immediate, or a memory operand of offset + selector."""
    return type(op) is Far or (type(op) is Mem and op.size == insn.operand_size // 8 + 2)


def _far_target(cpu, insn, op) -> tuple[int, int, int]:
    """(selector, offset, operand size in bytes) of a far JMP/CALL."""
    if type(op) is Far:
        return op.seg, op.offset, insn.operand_size // 8
    if type(op) is not Mem:
        raise CpuFault(UD)
    la = linear(cpu, op)
    size = op.size - 2
    if size == 4 and cpu.code_bits == 64 and cpu.vendor != VENDOR_AMD and any(
            p & 0xF8 == 0x48 for p in insn.unused_prefixes):
        size = 8  # Intel's REX.W JMP/CALL m16:64 (SDM Vol. 2A); AMD ignores REX.W here
    offset = cpu.read_mem(la, size)
    sel = cpu.read_mem(la + size, 2)
    return sel, offset, size


def _check_far_code(cpu, seg: Segment) -> None:
    if not cpu.cr0 & CR0_PE or cpu.fl & RFLAGS_VM:
        return
    if seg.type & 4:    # conforming
        if seg.dpl > cpu.cpl:
            raise CpuFault(GP, seg.selector & 0xFFFC)
    elif seg.dpl != cpu.cpl or (seg.selector & 3) > cpu.cpl:
        raise CpuFault(GP, seg.selector & 0xFFFC)


def _system_target(cpu, sel: int) -> int | None:
    """The raw descriptor when a far JMP/CALL in protected mode names a system descriptor
    (a gate or a TSS), else None (a code segment: the direct transfer)."""
    if not cpu.cr0 & CR0_PE or cpu.fl & RFLAGS_VM or sel & ~3 == 0:
        return None
    raw, _ = cpu.read_descriptor(sel)
    return None if raw >> 44 & 1 else raw


def _through_system(cpu, sel: int, raw: int, call: bool) -> None:
    kind = (raw >> 40) & 0xF
    if kind in (gates.CALL_GATE16, gates.CALL_GATE32) and not cpu.efer & EFER_LMA:
        gates.through_call_gate(cpu, sel, raw, call)
    elif kind in (tasks.TSS16_AVAILABLE, tasks.TSS32_AVAILABLE, tasks.TASK_GATE) \
            and not cpu.efer & EFER_LMA:
        tasks.through_gate_or_tss(cpu, sel, raw, call)
    else:
        raise CpuFault(GP, sel & 0xFFFC, f"far transfer to system descriptor type {kind:#x}")


def h_ljmp(cpu, c) -> None:
    insn, (op,) = c
    sel, offset, size = _far_target(cpu, insn, op)
    raw = _system_target(cpu, sel)
    if raw is not None:
        return _through_system(cpu, sel, raw, call=False)
    seg = cpu.code_segment(sel)
    _check_far_code(cpu, seg)
    cpu.load_cs(seg, cpu.cpl if cpu.cr0 & CR0_PE and not cpu.fl & RFLAGS_VM else None)
    cpu.rip = offset & MASK[size]


def h_jmp(cpu, c) -> None:
    insn, (op,) = c
    if is_far(insn, op):
        return h_ljmp(cpu, c)
    cpu.rip = read(cpu, op) & MASK[insn.operand_size // 8]


def h_call(cpu, c) -> None:
    insn, (op,) = c
    size = insn.operand_size // 8
    if is_far(insn, op):
        sel, offset, size = _far_target(cpu, insn, op)
        raw = _system_target(cpu, sel)
        if raw is not None:
            return _through_system(cpu, sel, raw, call=True)
        seg = cpu.code_segment(sel)
        _check_far_code(cpu, seg)
        cpu.push(cpu.seg[1].selector, size)
        cpu.push(cpu.rip, size)
        cpu.load_cs(seg, cpu.cpl if cpu.cr0 & CR0_PE and not cpu.fl & RFLAGS_VM else None)
        cpu.rip = offset & MASK[size]
        return
    target = read(cpu, op) & MASK[size]
    cpu.push(cpu.rip, size)
    cpu.rip = target


def h_retf(cpu, c) -> None:
    insn, ops = c
    size = insn.operand_size // 8
    offset = cpu.pop(size)
    sel = cpu.pop(size) & 0xFFFF
    if cpu.cr0 & CR0_PE and not cpu.fl & RFLAGS_VM and (sel & 3) != cpu.cpl:
        if (sel & 3) < cpu.cpl:
            raise CpuFault(GP, sel & 0xFFFC, "far return to a more privileged level")
        if cpu.code_bits == 64:
            raise CpuFault(GP, sel & 0xFFFC, "64-bit far return to an outer level: not "
                                             "implemented")
        return gates.return_outward(cpu, sel, offset, size, ops[0].value if ops else 0)
    seg = cpu.code_segment(sel)
    cpu.load_cs(seg, cpu.cpl if cpu.cr0 & CR0_PE and not cpu.fl & RFLAGS_VM else None)
    cpu.rip = offset & MASK[size]
    if ops:
        smask = MASK[cpu.stack_bits // 8]
        cpu._set_sp((cpu.r[4] + ops[0].value) & smask)


def h_iret(cpu, c) -> None:
    cpu.iret(c[0].operand_size // 8)


def h_load_far_pointer(cpu, c) -> None:
    insn, (dst, mem) = c
    seg = {"lds": 3, "les": 0, "lss": 2, "lfs": 4, "lgs": 5}[insn.mnemonic]
    la = linear(cpu, mem)
    size = dst.size
    offset = cpu.read_mem(la, size)
    sel = cpu.read_mem(la + size, 2)
    cpu.load_segment(seg, sel)
    write_reg(cpu, dst, offset)


# -- interrupts -----------------------------------------------------------------------------------

def h_int(cpu, c) -> None:
    insn, ops = c
    name = insn.mnemonic
    if name == "int3":
        if cpu.int3_stops:   # a debugger's breakpoint: stop at the int3, deliver nothing
            cpu.rip = insn.address
            cpu.pending.append(("int3", 0, 0, 0))
            return
        vector = BP
    elif name == "into":
        if not cpu.flags() & 0x800:
            return
        vector = OF
    elif name == "int1":
        # ICEBP's trap-like #DB is the instruction's own: no single-step #DB after it (nor
        # the one a MOV SS before it held back), DR6.BS unset; a data breakpoint a MOV SS
        # held back is reported in the same #DB (kvm-unit-tests debug "Single-Step + ICEBP
        # #DB w/ MOVSS blocking", "MOV SS + watchpoint + ICEBP", written on hardware)
        vector = 1
        cpu.tf_armed = cpu.movss_shadow = False
        cpu.dr[4] = (cpu.dr[4] & ~0xF) | cpu.guest_watch_hits
        cpu.guest_watch_hits = 0
    else:
        vector = ops[0].value & 0xFF
        if cpu.fl & RFLAGS_VM and _iopl(cpu) < 3:
            raise CpuFault(GP, 0)
    cpu.deliver(vector, None, soft=name != "int1")


def h_rdpkru(cpu, c) -> None:
    """RDPKRU/WRPKRU (SDM Vol. 2B): #UD unless CR4.PKE; #GP(0) if ECX (WRPKRU: or EDX) is
    not 0; any CPL. WRPKRU empties the software TLB, which holds accesses the old PKRU
    allowed (the SDM's TLBs hold no rights from PKRU, so no INVLPG is needed after it)."""
    if not cpu.cr4 & CR4_PKE:
        raise CpuFault(UD)
    if cpu.r[1] & 0xFFFFFFFF:
        raise CpuFault(GP, 0)
    if c[0].mnemonic == "rdpkru":
        cpu.r[0], cpu.r[2] = cpu.pkru, 0
        return
    if cpu.r[2] & 0xFFFFFFFF:
        raise CpuFault(GP, 0)
    cpu.pkru = cpu.r[0] & 0xFFFFFFFF
    cpu.flush_tlb()


def h_stac(cpu, c) -> None:
    """STAC/CLAC (SMAP): set or clear RFLAGS.AC; CPL 0 only. The TLB keeps supervisor
    entries of user pages out while SMAP is on, so nothing cached depends on AC."""
    _need_cpl0(cpu)
    if c[0].mnemonic == "stac":
        cpu.fl |= RFLAGS_AC
    else:
        cpu.fl &= ~RFLAGS_AC


def h_ud2(cpu, c) -> None:
    raise CpuFault(UD)


def h_hlt(cpu, c) -> None:
    _need_cpl0(cpu)
    cpu.halted = cpu.attn = True


def h_cli(cpu, c) -> None:
    if cpu.cr0 & CR0_PE and cpu.cpl > _iopl(cpu):
        raise CpuFault(GP, 0)
    cpu.fl &= ~RFLAGS_IF


def h_sti(cpu, c) -> None:
    if cpu.cr0 & CR0_PE and cpu.cpl > _iopl(cpu):
        raise CpuFault(GP, 0)
    if not cpu.fl & RFLAGS_IF:
        cpu.shadow = cpu.attn = True
    cpu.fl |= RFLAGS_IF
    cpu.irq_check = cpu.attn = True


# -- identification, time, MSRs ------------------------------------------------------------------



def check_vendor(name: str) -> bytes:
    """The vendor string of ``--cpu-vendor``: one the CPU models (GenuineIntel, AuthenticAMD)."""
    vendor = name.encode("ascii", "replace")
    if vendor not in VENDORS:
        raise ValueError(f"unknown CPU vendor {name!r}: choose "
                         f"{' or '.join(v.decode() for v in VENDORS)}")
    return vendor


def vendor_regs(vendor: bytes) -> tuple[int, int, int]:
    """EBX, EDX, ECX of CPUID leaf 0 (and AMD's 0x80000000) for a 12-byte vendor string."""
    b, d, c = (int.from_bytes(vendor[i:i + 4], "little") for i in (0, 4, 8))
    return b, d, c


def h_cpuid(cpu, c) -> None:
    leaf = cpu.r[0] & 0xFFFFFFFF
    a, b, cc, d = cpuid(leaf, cpu.r[1] & 0xFFFFFFFF)
    if leaf == 0 and cpu.vendor != VENDOR:   # the model's vendor (``--cpu-vendor``)
        b, d, cc = vendor_regs(cpu.vendor)
    if leaf == 1 and cpu.cr4 & CR4_OSXSAVE:
        cc |= 1 << 27       # OSXSAVE mirrors CR4.OSXSAVE (SDM Vol. 2A CPUID Table 3-10)
    if leaf == 7 and cpu.r[1] & 0xFFFFFFFF == 0:
        if cpu.cr4 & CR4_PKE:
            cc |= 1 << 4    # OSPKE mirrors CR4.PKE (Table 3-8)
        if cpu.max_linear_bits < 57:
            cc &= ~LEAF7_ECX_LA57
    if leaf == 0x80000008:  # EAX[15:8]: linear-address bits of the model
        a = (a & ~0xFF00) | (cpu.max_linear_bits << 8)
    cpu.r[0], cpu.r[3], cpu.r[1], cpu.r[2] = a, b, cc, d


def h_rdtsc(cpu, c) -> None:
    if cpu.cr4 & 4 and cpu.cpl != 0:
        raise CpuFault(GP, 0)
    t = cpu.tsc()
    cpu.r[0], cpu.r[2] = t & 0xFFFFFFFF, (t >> 32) & 0xFFFFFFFF
    if c[0].mnemonic == "rdtscp":
        cpu.r[1] = cpu.msrs.get(MSR_TSC_AUX, 0) & 0xFFFFFFFF


def read_msr(cpu, index: int) -> int:
    apic = getattr(cpu, "apic", None)  # the board's local APIC: its MSRs (CpuFault = #GP)
    if apic is not None:
        value = apic.read_msr(index)
        if value is not None:
            return value
    if index == MSR_EFER:
        return cpu.efer
    if index == MSR_FS_BASE:
        return cpu.sbase[FS]
    if index == MSR_GS_BASE:
        return cpu.sbase[GS]
    if index == MSR_IA32_TSC:
        return cpu.tsc()
    if index in KNOWN_MSRS or index in MTRRS:
        return cpu.msrs.get(index, 0)
    if index == MSR_IA32_MCG_CAP:
        return 0
    if index in AMD_LEGACY_PERF and cpu.vendor == VENDOR_AMD:
        return cpu.msrs.get(index, 0)
    raise CpuFault(GP, 0, f"rdmsr {index:#x}")


def write_msr(cpu, index: int, value: int) -> None:
    apic = getattr(cpu, "apic", None)
    if apic is not None and apic.write_msr(index, value):
        cpu.irq_check = True
        return
    if index in CANONICAL_MSRS and not _canonical(cpu, value):
        raise CpuFault(GP, 0)
    if index == MSR_EFER:
        if value & ~0xD01:
            raise CpuFault(GP, 0)
        cpu.set_efer(value)
    elif index in (MSR_FS_BASE, MSR_GS_BASE):
        i = FS if index == MSR_FS_BASE else GS
        s = cpu.seg[i]
        cpu.seg[i] = Segment(s.selector, value, s.limit, s.type, s.s, s.dpl, s.present, s.db,
                             s.l, s.g, s.avl, s.unusable)
        cpu.sbase[i] = value
    elif index == MSR_IA32_TSC:
        cpu.tsc_offset = value - cpu.clock_ns()
    elif index == MSR_IA32_PKRS:
        if value >> 32:     # bits 63:32 are reserved (SDM Vol. 3A §4.6.2)
            raise CpuFault(GP, 0)
        cpu.msrs[index] = value
        cpu.flush_tlb()     # the software TLB holds accesses the old rights allowed
    elif index in KNOWN_MSRS or index in MTRRS:
        cpu.msrs[index] = value
    elif index in AMD_LEGACY_PERF and cpu.vendor == VENDOR_AMD:
        cpu.msrs[index] = value
    else:
        raise CpuFault(GP, 0, f"wrmsr {index:#x}")


def _canonical(cpu, address: int) -> bool:
    """An address the CPU stores (an MSR, a descriptor-table or system-segment base) is
    canonical at the model's widest linear address, whatever CR4.LA57 (cpu/paging.py)."""
    return canonical(address, cpu.max_linear_bits)


def h_rdmsr(cpu, c) -> None:
    _need_cpl0(cpu)
    v = read_msr(cpu, cpu.r[1] & 0xFFFFFFFF)
    cpu.r[0], cpu.r[2] = v & 0xFFFFFFFF, (v >> 32) & 0xFFFFFFFF


def h_wrmsr(cpu, c) -> None:
    _need_cpl0(cpu)
    write_msr(cpu, cpu.r[1] & 0xFFFFFFFF,
              ((cpu.r[2] & 0xFFFFFFFF) << 32) | (cpu.r[0] & 0xFFFFFFFF))


# -- fast system calls (long mode) ----------------------------------------------------------------

def h_syscall(cpu, c) -> None:
    """SYSCALL. 64-bit mode: SDM Vol. 2B and AMD APM Vol. 3 agree. Compatibility and legacy
    mode differ by vendor: Intel raises #UD (SDM: "IF (CS.L ≠ 1) or (IA32_EFER.LMA ≠ 1)"),
    AMD enters the kernel — from compatibility mode at CSTAR in 64-bit mode with R11 and
    SFMASK as in 64-bit mode, from legacy mode at STAR[31:0] with ECX = the return EIP and
    IF, VM, RF cleared (APM Vol. 3 "SYSCALL"). RFLAGS.TF traps after it only if it is still
    set at its end (kvm-unit-tests syscall "syscall TF handling")."""
    long_mode = cpu.efer & EFER_LMA
    if not cpu.efer & EFER_SCE or (cpu.code_bits != 64 and (
            cpu.vendor != VENDOR_AMD or not cpu.cr0 & CR0_PE or cpu.fl & RFLAGS_VM)):
        raise CpuFault(UD)
    star = cpu.msrs.get(MSR_STAR, 0)
    sel = (star >> 32) & 0xFFFC
    fl = cpu.flags()
    if long_mode:
        target = cpu.msrs.get(MSR_LSTAR if cpu.code_bits == 64 else MSR_CSTAR, 0)
        cpu.r[1] = cpu.rip
        cpu.r[11] = fl & ~RFLAGS_RF
        cpu.set_flags(fl & ~cpu.msrs.get(MSR_SFMASK, 0) & ~RFLAGS_RF)
        cpu.load_cs(Segment(sel, 0, 0xFFFFFFFF, 0xB, 1, 0, 1, 0, 1, 1))
    else:
        cpu.r[1] = cpu.rip & 0xFFFFFFFF
        cpu.set_flags(fl & ~(RFLAGS_IF | RFLAGS_VM | RFLAGS_RF))
        cpu.load_cs(Segment(sel, 0, 0xFFFFFFFF, 0xB, 1, 0, 1, 1, 0, 1))
        target = star & 0xFFFFFFFF
    cpu.set_segment(2, Segment(sel + 8, 0, 0xFFFFFFFF, 0x3, 1, 0, 1, 1, 0, 1))
    cpu.rip = target
    cpu.tf_armed = bool(cpu.fl & RFLAGS_TF)


def h_sysret(cpu, c) -> None:
    insn = c[0]
    if not cpu.efer & EFER_SCE or cpu.code_bits != 64:
        raise CpuFault(UD)
    _need_cpl0(cpu)
    star = cpu.msrs.get(MSR_STAR, 0)
    base = (star >> 48) & 0xFFFF
    if insn.operand_size == 64:
        cs = Segment((base + 16) | 3, 0, 0xFFFFFFFF, 0xB, 1, 3, 1, 0, 1, 1)
        rip = cpu.r[1]
    else:
        cs = Segment(base | 3, 0, 0xFFFFFFFF, 0xB, 1, 3, 1, 1, 0, 1)
        rip = cpu.r[1] & 0xFFFFFFFF
    cpu.set_flags((cpu.r[11] & 0x3C7FD7) | 2)
    cpu.load_cs(cs)
    cpu.set_segment(2, Segment((base + 8) | 3, 0, 0xFFFFFFFF, 0x3, 1, 3, 1, 1, 0, 1))
    cpu.rip = rip
    cpu.tf_armed = bool(cpu.fl & RFLAGS_TF)   # TF set at its end traps right after it
    cpu.irq_check = cpu.attn = True


def h_sysenter(cpu, c) -> None:
    """SYSENTER (SDM Vol. 2B): flat CPL-0 CS/SS from IA32_SYSENTER_CS, ESP/EIP from MSRs."""
    cs_sel = cpu.msrs.get(0x174, 0) & 0xFFFC
    if not cpu.cr0 & CR0_PE or cs_sel == 0:
        raise CpuFault(GP, 0)
    cpu.set_flags(cpu.flags() & ~(RFLAGS_VM | RFLAGS_IF | RFLAGS_RF))
    long64 = bool(cpu.efer & EFER_LMA)
    cpu.load_cs(Segment(cs_sel, 0, 0xFFFFFFFF, 0xB, 1, 0, 1, 0 if long64 else 1,
                        1 if long64 else 0, 1))
    cpu.set_segment(2, Segment(cs_sel + 8, 0, 0xFFFFFFFF, 0x3, 1, 0, 1, 1, 0, 1))
    mask = M64 if long64 else 0xFFFFFFFF
    cpu.r[4] = cpu.msrs.get(0x175, 0) & mask
    cpu.rip = cpu.msrs.get(0x176, 0) & mask


def h_sysexit(cpu, c) -> None:
    """SYSEXIT: back to CPL 3 at EDX/RDX with ECX/RCX as the stack pointer."""
    insn = c[0]
    cs_sel = cpu.msrs.get(0x174, 0) & 0xFFFC
    if not cpu.cr0 & CR0_PE or cs_sel == 0:
        raise CpuFault(GP, 0)
    _need_cpl0(cpu)
    if insn.operand_size == 64:
        cs = Segment((cs_sel + 32) | 3, 0, 0xFFFFFFFF, 0xB, 1, 3, 1, 0, 1, 1)
        ss_sel, mask = cs_sel + 40, M64
    else:
        cs = Segment((cs_sel + 16) | 3, 0, 0xFFFFFFFF, 0xB, 1, 3, 1, 1, 0, 1)
        ss_sel, mask = cs_sel + 24, 0xFFFFFFFF
    cpu.load_cs(cs)
    cpu.set_segment(2, Segment(ss_sel | 3, 0, 0xFFFFFFFF, 0x3, 1, 3, 1, 1, 0, 1))
    cpu.r[4] = cpu.r[1] & mask
    cpu.rip = cpu.r[2] & mask


def h_vmcall(cpu, c) -> None:
    """VMCALL/VMMCALL: a hypercall to the monitor (KVM's ABI: number in RAX, arguments in
    RBX, RCX, RDX, RSI; the result comes back in RAX). The instruction retires; the block
    stops after it and the backend hands out a Hypercall exit."""
    _need_cpl0(cpu)
    r = cpu.r
    cpu.pending.append(("hypercall", r[0], 0, (r[3], r[1], r[2], r[6])))


# -- descriptor inspection (SDM Vol. 2A "LAR", "LSL", "VERR/VERW"; Vol. 2A "ARPL", "BOUND") --

_LAR_SYSTEM = frozenset((1, 2, 3, 4, 5, 9, 0xB, 0xC))   # TSS, LDT, gates (legacy modes)
_LSL_SYSTEM = frozenset((1, 2, 3, 9, 0xB))              # TSS and LDT only


def _inspect(cpu, selector: int, system_ok: frozenset) -> tuple[int, Segment] | None:
    """The raw descriptor and its Segment if visible at CPL/RPL, else None (ZF=0)."""
    if not cpu.cr0 & CR0_PE or cpu.fl & RFLAGS_VM:
        raise CpuFault(UD)
    selector &= 0xFFFF
    if selector & ~3 == 0:
        return None
    try:
        raw, _ = cpu.read_descriptor(selector)
    except CpuFault as exc:
        if exc.vector == GP and exc.error_code == selector & 0xFFFC:
            return None                     # beyond the table limit: ZF=0, no fault
        raise
    seg = parse_descriptor(raw, selector)
    if not seg.s:
        if seg.type not in system_ok or (cpu.efer & EFER_LMA and seg.type not in (2, 9, 0xB)):
            return None
    conforming_code = seg.s and seg.type & 0xC == 0xC
    if not conforming_code and (seg.dpl < cpu.cpl or seg.dpl < (selector & 3)):
        return None
    return raw, seg


def _set_zf(cpu, ok: bool) -> None:
    fl = cpu.flags()
    cpu.fl = (fl | 0x40) if ok else (fl & ~0x40)


def h_lar(cpu, c) -> None:
    insn, (dst, src) = c
    found = _inspect(cpu, read(cpu, src, 2), _LAR_SYSTEM if insn.mnemonic == "lar"
                     else _LSL_SYSTEM)
    if found is not None:
        raw, seg = found
        if insn.mnemonic == "lar":
            value = (raw >> 32) & (0x00F0FF00 if dst.size >= 4 else 0xFF00)
        else:
            value = seg.limit & MASK[dst.size] if dst.size < 4 else seg.limit
        write(cpu, dst, value)
    _set_zf(cpu, found is not None)


def h_verr(cpu, c) -> None:
    insn, (src,) = c
    found = _inspect(cpu, read(cpu, src, 2), frozenset())
    ok = False
    if found is not None:
        seg = found[1]
        if insn.mnemonic == "verr":
            ok = seg.s and (not seg.type & 8 or seg.type & 2)   # data, or readable code
        else:
            ok = seg.s and not seg.type & 8 and bool(seg.type & 2)   # writable data
    _set_zf(cpu, bool(ok))


def h_arpl(cpu, c) -> None:
    dst, src = c[1]
    if not cpu.cr0 & CR0_PE or cpu.fl & RFLAGS_VM:
        raise CpuFault(UD)
    d, s = read(cpu, dst, 2), read(cpu, src, 2)
    if d & 3 < s & 3:
        write(cpu, dst, (d & ~3) | (s & 3), 2)
        _set_zf(cpu, True)
    else:
        _set_zf(cpu, False)


def h_bound(cpu, c) -> None:
    dst, mem = c[1]
    size = dst.size
    if type(mem) is not Mem:
        raise CpuFault(UD)
    la = linear(cpu, mem)
    bits = size * 8
    sign = 1 << (bits - 1)
    lower = cpu.read_mem(la, size)
    upper = cpu.read_mem(la + size, size)
    v = read(cpu, dst)
    signed = [(x ^ sign) - sign for x in (v, lower, upper)]
    if not signed[1] <= signed[0] <= signed[2]:
        raise CpuFault(5)                   # #BR


def h_salc(cpu, c) -> None:
    """SALC (D6, outside 64-bit mode; undocumented by Intel, executed by every x86 and by
    QEMU): AL = CF ? 0xFF : 0, flags unchanged. kvm-unit-tests realmode "salc"."""
    cpu.r[0] = (cpu.r[0] & ~0xFF) | (0xFF if cpu.flags() & 1 else 0)


def h_swapgs(cpu, c) -> None:
    if cpu.code_bits != 64:
        raise CpuFault(UD)
    _need_cpl0(cpu)
    kernel = cpu.msrs.get(MSR_KERNEL_GS_BASE, 0)
    cpu.msrs[MSR_KERNEL_GS_BASE] = cpu.sbase[GS]
    write_msr(cpu, MSR_GS_BASE, kernel)


SYSTEM_HELPERS = {
    "mov": h_mov, "lgdt": h_lgdt, "lidt": h_lgdt, "sgdt": h_sgdt, "sidt": h_sgdt,
    "ltr": h_ltr, "lldt": h_lldt, "sldt": h_sldt, "str": h_sldt, "smsw": h_smsw,
    "lmsw": h_lmsw, "clts": h_clts, "invlpg": h_invlpg, "wbinvd": h_nop_priv,
    "invd": h_nop_priv, "ljmp": h_ljmp, "jmp": h_jmp, "call": h_call, "lcall": h_call,
    "retf": h_retf, "lret": h_retf, "iret": h_iret, "iretd": h_iret, "iretq": h_iret,
    "lds": h_load_far_pointer, "les": h_load_far_pointer, "lss": h_load_far_pointer,
    "lfs": h_load_far_pointer, "lgs": h_load_far_pointer,
    "int": h_int, "int3": h_int, "into": h_int, "int1": h_int, "ud2": h_ud2, "hlt": h_hlt,
    "cli": h_cli, "sti": h_sti, "cpuid": h_cpuid, "rdtsc": h_rdtsc, "rdtscp": h_rdtsc,
    "rdmsr": h_rdmsr, "wrmsr": h_wrmsr, "syscall": h_syscall, "sysret": h_sysret,
    "salc": h_salc,
    "swapgs": h_swapgs, "sysenter": h_sysenter, "sysexit": h_sysexit,
    "vmcall": h_vmcall, "vmmcall": h_vmcall, "stac": h_stac, "clac": h_stac,
    "rdpkru": h_rdpkru, "wrpkru": h_rdpkru,
    "lar": h_lar, "lsl": h_lar, "verr": h_verr,
    "verw": h_verr, "arpl": h_arpl, "bound": h_bound,
}
