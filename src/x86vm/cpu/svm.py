"""AMD Secure Virtual Machine (APM Vol. 2 ch. 15; the VMCB: Appendix B) for the Python CPU.

The CPU runs the host (L1) until VMRUN loads a guest (L2) from a VMCB; guest mode then runs
on the same :class:`~x86vm.cpu.core.Cpu` registers until an intercepted event (an
instruction, an exception, a shutdown, a physical interrupt) makes a #VMEXIT: the guest
state and the exit code/info go back to the VMCB and the host state comes back from the host
save area (``VM_HSAVE_PA``). One numbering serves intercepts and exit codes: bit ``n`` of the
VMCB's intercept vectors (bytes 0-17H read as one little-endian bit string) exits with code
``n`` (CR reads 0-0FH ... exceptions 40H-5FH, INTR 60H ... VMRUN 80H ... INVPCID 0A2H;
APM Table B-1 and Appendix C). Not modelled: nested paging (CPUID reports no NPT), the
I/O permission map, VGIF, AVIC, pause filtering, TLB control (the TLB is flushed on every
world switch), intercepts of CR/DR accesses, PUSHF/POPF and PAUSE.

Guest-supplied addresses are checked: a VMCB or host save area must be a page-aligned page of
RAM below the physical-address limit (else #GP(0)); an illegal guest state in the VMCB is a
#VMEXIT with VMEXIT_INVALID (APM §15.5.1) and the host continues after its VMRUN.
"""

from __future__ import annotations

from x86vm.cpu.errors import GP, PF, UD, CpuFault
from x86vm.cpu.state import (
    CR0_CD,
    CR0_NW,
    CR0_PE,
    CR0_PG,
    CR4_PAE,
    EFER_LMA,
    EFER_LME,
    MSR_CSTAR,
    MSR_IA32_SYSENTER_CS,
    MSR_IA32_SYSENTER_EIP,
    MSR_IA32_SYSENTER_ESP,
    MSR_KERNEL_GS_BASE,
    MSR_LSTAR,
    MSR_SFMASK,
    MSR_STAR,
    RFLAGS_IF,
    Segment,
    TableRegister,
)

MSR_VM_CR = 0xC0010114
MSR_VM_HSAVE_PA = 0xC0010117
SVM_MSRS = frozenset((MSR_VM_CR, MSR_VM_HSAVE_PA))
EFER_SVME = 1 << 12
VM_CR_LOCK, VM_CR_SVMDIS = 1 << 3, 1 << 4
PHYS_LIMIT = 1 << 40                    # CPUID 8000_0008H: 40 physical address bits
M64 = 0xFFFFFFFFFFFFFFFF

# exit codes = intercept bit numbers (APM Appendix C)
EXIT_EXCP_BASE, EXIT_INTR, EXIT_NMI = 0x40, 0x60, 0x61
EXIT_HLT, EXIT_MSR, EXIT_SHUTDOWN = 0x78, 0x7C, 0x7F
EXIT_VMRUN, EXIT_VMMCALL, EXIT_VMLOAD, EXIT_VMSAVE = 0x80, 0x81, 0x82, 0x83
EXIT_STGI, EXIT_CLGI, EXIT_SKINIT, EXIT_INVLPGA = 0x84, 0x85, 0x86, 0x7A
EXIT_INVALID = M64                      # VMEXIT_INVALID (-1)

# VMCB control area (APM Table B-1)
C_INTERCEPTS, C_IOPM, C_MSRPM, C_TSC_OFFSET = 0x000, 0x040, 0x048, 0x050
C_ASID, C_INT_CTL, C_INT_STATE = 0x058, 0x060, 0x068
C_EXIT_CODE, C_EXIT_INFO1, C_EXIT_INFO2, C_EXIT_INT_INFO = 0x070, 0x078, 0x080, 0x088
C_NESTED_CTL, C_EVENT_INJ, C_NEXT_RIP = 0x090, 0x0A8, 0x0C8
INTERCEPT_BYTES = 0x18
V_INTR_MASKING = 1 << 24
# state save area (APM Table B-2): segments are 16 bytes — selector, attributes, limit, base
S_ES, S_CS, S_SS, S_DS, S_FS, S_GS = 0x400, 0x410, 0x420, 0x430, 0x440, 0x450
S_GDTR, S_LDTR, S_IDTR, S_TR = 0x460, 0x470, 0x480, 0x490
S_CPL, S_EFER, S_CR4, S_CR3, S_CR0 = 0x4CB, 0x4D0, 0x548, 0x550, 0x558
S_DR7, S_DR6, S_RFLAGS, S_RIP, S_RSP, S_RAX = 0x560, 0x568, 0x570, 0x578, 0x5D8, 0x5F8
S_CR2 = 0x640
# VMLOAD/VMSAVE's MSRs (APM §15.5.2 "VMSAVE and VMLOAD"), by their save-area offset
VMLOAD_MSRS = ((0x600, MSR_STAR), (0x608, MSR_LSTAR), (0x610, MSR_CSTAR),
               (0x618, MSR_SFMASK), (0x620, MSR_KERNEL_GS_BASE),
               (0x628, MSR_IA32_SYSENTER_CS), (0x630, MSR_IA32_SYSENTER_ESP),
               (0x638, MSR_IA32_SYSENTER_EIP))
WORLD_SEGMENTS = ((0, S_ES), (1, S_CS), (2, S_SS), (3, S_DS))   # cpu.seg index, offset

# EVENTINJ (APM §15.20): vector 7:0, type 10:8, EV 11, V 31
EVENT_VALID, EVENT_EV = 1 << 31, 1 << 11
EVENT_INTR, EVENT_NMI, EVENT_EXCEPTION, EVENT_SOFT = 0, 2, 3, 4

# instructions whose intercept the generic wrapper checks: mnemonic → intercept bit
INSTRUCTION_INTERCEPTS = {
    "sidt": 0x66, "sgdt": 0x67, "sldt": 0x68, "str": 0x69, "lidt": 0x6A, "lgdt": 0x6B,
    "lldt": 0x6C, "ltr": 0x6D, "rdtsc": 0x6E, "rdpmc": 0x6F, "cpuid": 0x72, "rsm": 0x73,
    "iret": 0x74, "iretd": 0x74, "iretq": 0x74, "int": 0x75, "invd": 0x76, "hlt": 0x78,
    "invlpg": 0x79, "rdtscp": 0x87, "int1": 0x88, "wbinvd": 0x89, "monitor": 0x8A,
    "mwait": 0x8B, "xsetbv": 0x8D, "rdpru": 0x8E, "invpcid": 0xA2,
}
# MSR permission map (APM §15.11): 2 bits (read, write) per MSR, three 2-KiB ranges
MSRPM_RANGES = ((0x00000000, 0x0000), (0xC0000000, 0x0800), (0xC0010000, 0x1000))


class SvmExit(CpuFault):
    """An intercepted instruction: raised by its semantics, turned into a #VMEXIT by the
    dispatcher (:meth:`Svm.intercept_fault`) at the instruction's address."""

    def __init__(self, code: int, info1: int = 0, info2: int = 0,
                 next_rip: int | None = None) -> None:
        super().__init__(-1, None, f"#VMEXIT {code:#x}")
        self.code, self.info1, self.info2, self.next_rip = code, info1, info2, next_rip


def _attr(seg: Segment) -> int:
    """A segment's VMCB attribute word: descriptor bits 47:40 then 55:52 (APM §15.5.1)."""
    return (seg.type | seg.s << 4 | seg.dpl << 5 | (seg.present and not seg.unusable) << 7
            | seg.avl << 8 | seg.l << 9 | seg.db << 10 | seg.g << 11)


def _segment(selector: int, attr: int, limit: int, base: int, data: bool) -> Segment:
    present = (attr >> 7) & 1
    return Segment(selector, base, limit, attr & 0xF, (attr >> 4) & 1, (attr >> 5) & 3,
                   present, (attr >> 10) & 1, (attr >> 9) & 1, (attr >> 11) & 1,
                   (attr >> 8) & 1, int(data and not present))


class Vmcb:
    """A 4-KiB VMCB (or host save area) of guest RAM, read once and written back."""

    def __init__(self, cpu, pa: int) -> None:
        if pa & 0xFFF or pa >= PHYS_LIMIT:
            raise CpuFault(GP, 0, f"SVM: bad VMCB address {pa:#x}")
        found = cpu.ram.find_writable(pa)
        if found is None or cpu.ram.find_writable(pa + 0xFFF) is None:
            raise CpuFault(GP, 0, f"SVM: VMCB {pa:#x} is not RAM")
        self.cpu, self.pa = cpu, pa
        self.buf, self.off = found
        self.data = bytearray(self.buf[self.off:self.off + 4096])

    def reread(self) -> Vmcb:
        """The page's current bytes (the guest may have written it since VMRUN)."""
        self.data = bytearray(self.buf[self.off:self.off + 4096])
        return self

    def q(self, off: int, size: int = 8) -> int:
        return int.from_bytes(self.data[off:off + size], "little")

    def put(self, off: int, value: int, size: int = 8) -> None:
        self.data[off:off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")

    def segment(self, off: int, data: bool = True) -> Segment:
        return _segment(self.q(off, 2), self.q(off + 2, 2), self.q(off + 4, 4),
                        self.q(off + 8), data)

    def put_segment(self, off: int, seg: Segment) -> None:
        self.put(off, seg.selector, 2)
        self.put(off + 2, _attr(seg), 2)
        self.put(off + 4, seg.limit, 4)
        self.put(off + 8, seg.base)

    def table(self, off: int) -> TableRegister:
        return TableRegister(self.q(off + 8), self.q(off + 4, 4) & 0xFFFF)

    def put_table(self, off: int, table: TableRegister) -> None:
        self.put(off + 4, table.limit, 4)
        self.put(off + 8, table.base)

    def write_back(self) -> None:
        self.buf[self.off:self.off + 4096] = self.data
        self.cpu.ram_written(self.pa, 4096)


class Svm:
    """The SVM state of one vCPU: GIF, the MSRs, and the guest's VMCB while in guest mode."""

    def __init__(self) -> None:
        self.gif = True
        self.vm_cr = 0
        self.hsave_pa = 0
        self.guest = False          # running the guest of a VMRUN
        self.vmcb_pa = 0
        self.vmcb: Vmcb | None = None   # the guest's VMCB and the host save area, found
        self.host: Vmcb | None = None   # (and checked) by VMRUN: #VMEXIT cannot fail
        self.intercepts = 0         # the guest's intercept vectors as one int
        self.int_ctl = 0
        self.host_if = False        # the host's RFLAGS.IF (V_INTR_MASKING)
        self.tsc_offset = 0
        self.msrpm = 0
        self.injecting = False      # EVENTINJ's event is delivered, not intercepted

    def intercepted(self, bit: int) -> bool:
        return self.guest and bool(self.intercepts >> bit & 1)

    # -- MSRs (APM §15.30) --------------------------------------------------------------

    def read_msr(self, index: int) -> int:
        return self.vm_cr if index == MSR_VM_CR else self.hsave_pa

    def write_msr(self, cpu, index: int, value: int) -> None:
        if index == MSR_VM_CR:
            if value & ~0x1F:
                raise CpuFault(GP, 0)
            if self.vm_cr & VM_CR_LOCK:     # SVMDIS and LOCK are read-only once locked
                value = (value & ~(VM_CR_LOCK | VM_CR_SVMDIS)) | \
                    (self.vm_cr & (VM_CR_LOCK | VM_CR_SVMDIS))
            if value & VM_CR_SVMDIS and cpu.efer & EFER_SVME:
                raise CpuFault(GP, 0)
            self.vm_cr = value
        else:
            if value & 0xFFF or value >= PHYS_LIMIT:
                raise CpuFault(GP, 0)
            self.hsave_pa = value

    def efer_writable(self) -> int:
        """EFER.SVME may be set unless VM_CR.SVMDIS (APM §15.4)."""
        return 0 if self.vm_cr & VM_CR_SVMDIS else EFER_SVME

    # -- the dispatcher's hooks ------------------------------------------------------------

    def intercept_fault(self, cpu, exc: CpuFault) -> bool:
        """In guest mode: a #VMEXIT for an intercepted instruction or exception."""
        if isinstance(exc, SvmExit):
            vmexit(cpu, exc.code, exc.info1, exc.info2, exc.next_rip)
            return True
        if self.injecting:          # APM §15.20: an injected event is not intercepted
            self.injecting = False
            return False
        vector = exc.vector
        if 0 <= vector < 32 and self.intercepts >> (EXIT_EXCP_BASE + vector) & 1:
            info2 = cpu.cr2 if vector == PF else 0
            vmexit(cpu, EXIT_EXCP_BASE + vector, exc.error_code or 0, info2)
            return True
        return False

    def shutdown(self, cpu) -> bool:
        """A triple fault in guest mode with the shutdown intercept: #VMEXIT (APM §15.13)."""
        if self.intercepted(EXIT_SHUTDOWN):
            vmexit(cpu, EXIT_SHUTDOWN)
            return True
        return False

    def hold_interrupts(self, cpu) -> bool:
        """True when the dispatcher must not take an interrupt now: GIF is clear, or an
        intercepted physical interrupt has just made a #VMEXIT (APM §15.17, §15.21)."""
        if not self.gif:
            return True
        if not self.guest:
            return False
        if self.int_ctl & V_INTR_MASKING:   # physical interrupts follow the host's IF
            if not self.host_if:
                return True
        elif not cpu.fl & RFLAGS_IF:
            return False                    # the dispatcher sees IF = 0 itself
        ctl = cpu.controller
        if not self.intercepts >> EXIT_INTR & 1 or ctl is None or ctl.pending_vector() is None:
            return False
        vmexit(cpu, EXIT_INTR)
        return True


# -- the world switch ----------------------------------------------------------------------

def _check_guest_state(v: Vmcb, intercepts: int) -> bool:
    """The consistency checks of VMRUN (APM §15.5.1 "Canonicalization and Consistency
    Checks"); False for an illegal state (VMEXIT_INVALID)."""
    efer, cr0, cr3, cr4 = v.q(S_EFER), v.q(S_CR0), v.q(S_CR3), v.q(S_CR4)
    cs_attr = v.q(S_CS + 2, 2)
    long_paging = efer & EFER_LME and cr0 & CR0_PG
    from x86vm.cpu.system import CR4_IMPLEMENTED
    event = v.q(C_EVENT_INJ, 4)
    return not (
        not efer & EFER_SVME
        or (cr0 & CR0_NW and not cr0 & CR0_CD) or cr0 >> 32
        or (long_paging and cr3 >> 52) or cr4 & ~CR4_IMPLEMENTED
        or v.q(S_DR6) >> 32 or v.q(S_DR7) >> 32
        or efer & ~(0xD01 | EFER_SVME)
        or (long_paging and (not cr4 & CR4_PAE or not cr0 & CR0_PE))
        or (long_paging and cr4 & CR4_PAE and cs_attr >> 9 & 1 and cs_attr >> 10 & 1)
        or not intercepts >> EXIT_VMRUN & 1
        or v.q(C_MSRPM) + 0x2000 > PHYS_LIMIT or v.q(C_IOPM) + 0x3000 > PHYS_LIMIT
        or v.q(C_ASID, 4) == 0
        or (event & EVENT_VALID and (event >> 8 & 7 in (1, 5, 6, 7) or (
            event >> 8 & 7 == EVENT_EXCEPTION and event & 0xFF in (2, 15) or event & 0xFF > 31))))


def _load_world(cpu, v: Vmcb, with_cr2: bool) -> None:
    """The register state VMRUN and #VMEXIT switch (APM §15.5.1, §15.6)."""
    for i, off in WORLD_SEGMENTS:
        seg = v.segment(off, data=i != 1)
        cpu.seg[i] = seg
        cpu.sbase[i] = seg.base
    cpu.gdtr, cpu.idtr = v.table(S_GDTR), v.table(S_IDTR)
    efer = v.q(S_EFER) & ~EFER_LMA
    cr0, cr4 = v.q(S_CR0), v.q(S_CR4)
    if efer & EFER_LME and cr0 & CR0_PG and cr0 & CR0_PE:
        efer |= EFER_LMA
    cpu.efer, cpu.cr0, cpu.cr3, cpu.cr4 = efer, cr0, v.q(S_CR3), cr4
    if with_cr2:
        cpu.cr2 = v.q(S_CR2)
    cpu.set_flags(v.q(S_RFLAGS))
    cpu.rip, cpu.r[4], cpu.r[0] = v.q(S_RIP), v.q(S_RSP), v.q(S_RAX)
    cpu.shadow = cpu.movss_shadow = cpu.halted = False
    cpu.attn = cpu.irq_check = True
    cpu.cpl = -1                       # update_mode recomputes it and flushes the TLB
    cpu.flush_tlb()
    cpu.translator.flush_lookup()
    cpu.update_mode()


def _save_world(cpu, v: Vmcb) -> None:
    for i, off in WORLD_SEGMENTS:
        v.put_segment(off, cpu.seg[i])
    v.put_table(S_GDTR, cpu.gdtr)
    v.put_table(S_IDTR, cpu.idtr)
    v.put(S_EFER, cpu.efer)
    v.put(S_CR0, cpu.cr0)
    v.put(S_CR3, cpu.cr3)
    v.put(S_CR4, cpu.cr4)
    v.put(S_RFLAGS, cpu.flags())
    v.put(S_RSP, cpu.r[4])
    v.put(S_RAX, cpu.r[0])


def vmrun(cpu, vmcb_pa: int, next_rip: int) -> None:
    """VMRUN (APM §15.5): save the host to the host save area, check and load the guest,
    GIF = 1, inject EVENTINJ."""
    svm = cpu.svm
    v = Vmcb(cpu, vmcb_pa)
    host = Vmcb(cpu, svm.hsave_pa)
    _save_world(cpu, host)
    host.put(S_RIP, next_rip)
    host.put(S_CR2, cpu.cr2)
    host.write_back()
    intercepts = v.q(C_INTERCEPTS, INTERCEPT_BYTES)
    if not _check_guest_state(v, intercepts):
        v.put(C_EXIT_CODE, EXIT_INVALID)
        v.put(C_EXIT_INFO1, 0)
        v.put(C_EXIT_INFO2, 0)
        v.write_back()
        cpu.rip = next_rip
        return
    svm.guest, svm.vmcb_pa, svm.intercepts = True, vmcb_pa, intercepts
    svm.vmcb, svm.host = v, host
    svm.int_ctl = v.q(C_INT_CTL, 4)
    svm.host_if = bool(cpu.fl & RFLAGS_IF)
    svm.msrpm = v.q(C_MSRPM) & ~0xFFF
    svm.tsc_offset = v.q(C_TSC_OFFSET)
    cpu.tsc_offset = (cpu.tsc_offset + svm.tsc_offset) & M64
    _load_world(cpu, v, with_cr2=True)
    cpu.dr[4], cpu.dr[5] = v.q(S_DR6) | 0xFFFF0FF0, v.q(S_DR7) | 0x400
    cpu.set_guest_breakpoints()
    cpu.shadow = bool(v.q(C_INT_STATE, 4) & 1)
    svm.gif = True
    event = v.q(C_EVENT_INJ, 4)
    if event & EVENT_VALID:
        code = v.q(C_EVENT_INJ + 4, 4) if event & EVENT_EV else None
        cpu.pending_event = (event & 0xFF, code)
        svm.injecting = True


def vmexit(cpu, code: int, info1: int = 0, info2: int = 0,
           next_rip: int | None = None) -> None:
    """#VMEXIT (APM §15.6): the guest state and exit information to its VMCB, GIF = 0, the
    host state back from the host save area."""
    svm = cpu.svm
    v = svm.vmcb.reread()
    _save_world(cpu, v)
    v.put(S_RIP, cpu.rip)
    v.put(S_CR2, cpu.cr2)
    v.put(S_DR6, cpu.dr[4])
    v.put(S_DR7, cpu.dr[5])
    v.put(S_CPL, cpu.cpl, 1)
    v.put(C_INT_STATE, int(cpu.shadow), 4)
    v.put(C_EXIT_CODE, code)
    v.put(C_EXIT_INFO1, info1)
    v.put(C_EXIT_INFO2, info2)
    v.put(C_EXIT_INT_INFO, 0)
    v.put(C_EVENT_INJ, 0)             # EVENTINJ consumed (QEMU and KVM clear it whole)
    v.put(C_NEXT_RIP, next_rip or 0)
    v.write_back()
    svm.guest = svm.injecting = False
    svm.gif = False
    svm.intercepts = 0
    cpu.pending_event = None
    cpu.tsc_offset = (cpu.tsc_offset - svm.tsc_offset) & M64
    host = svm.host.reread()
    svm.vmcb = svm.host = None
    _load_world(cpu, host, with_cr2=False)
    cpu.cr0 |= CR0_PE
    cpu.dr[5] = 0x400                 # DR7: breakpoints disabled
    cpu.set_guest_breakpoints()


# -- the instructions (APM Vol. 3 "VMRUN", "VMLOAD", "VMSAVE", "STGI", "CLGI", ...) ---------

def _svm_checks(cpu, exit_code: int) -> None:
    """#UD without EFER.SVME or outside protected mode, #GP(0) above CPL 0, then the
    instruction's intercept (APM §15.7.1: after the simple exceptions)."""
    if cpu.svm is None or not cpu.efer & EFER_SVME or not cpu.cr0 & CR0_PE or cpu.fl & (1 << 17):
        raise CpuFault(UD)
    if cpu.cpl != 0:
        raise CpuFault(GP, 0)
    if cpu.svm.intercepted(exit_code):
        raise SvmExit(exit_code, next_rip=cpu.rip)


def _rax_address(cpu) -> int:
    return cpu.r[0] & (M64 if cpu.code_bits == 64 else 0xFFFFFFFF)


def h_vmrun(cpu, c) -> None:
    _svm_checks(cpu, EXIT_VMRUN)
    vmrun(cpu, _rax_address(cpu), cpu.rip)


def h_vmload(cpu, c) -> None:
    _svm_checks(cpu, EXIT_VMLOAD)
    v = Vmcb(cpu, _rax_address(cpu))
    for i, off in ((4, S_FS), (5, S_GS)):
        seg = v.segment(off)
        cpu.seg[i] = seg
        cpu.sbase[i] = seg.base
    cpu.tr = v.segment(S_TR, data=False)
    cpu.ldtr = v.segment(S_LDTR, data=False)
    for off, msr in VMLOAD_MSRS:
        cpu.msrs[msr] = v.q(off)
    cpu.update_mode()


def h_vmsave(cpu, c) -> None:
    _svm_checks(cpu, EXIT_VMSAVE)
    v = Vmcb(cpu, _rax_address(cpu))
    v.put_segment(S_FS, cpu.seg[4])
    v.put_segment(S_GS, cpu.seg[5])
    v.put_segment(S_TR, cpu.tr)
    v.put_segment(S_LDTR, cpu.ldtr)
    for off, msr in VMLOAD_MSRS:
        v.put(off, cpu.msrs.get(msr, 0))
    v.write_back()


def h_stgi(cpu, c) -> None:
    _svm_checks(cpu, EXIT_STGI)
    cpu.svm.gif = True
    cpu.irq_check = cpu.attn = True


def h_clgi(cpu, c) -> None:
    _svm_checks(cpu, EXIT_CLGI)
    cpu.svm.gif = False


def h_invlpga(cpu, c) -> None:
    """INVLPGA: this TLB is flushed whole (it holds one address space)."""
    _svm_checks(cpu, EXIT_INVLPGA)
    cpu.flush_tlb()
    cpu.translator.flush_lookup()


def h_skinit(cpu, c) -> None:
    """SKINIT is not implemented (CPUID reports no SKINIT): #UD, before any intercept —
    what KVM shows its guests; QEMU TCG exits with the SKINIT intercept instead."""
    raise cpu.undefined("skinit")


def make_vmmcall(hypercall):
    """VMMCALL: in guest mode its intercept, else #UD (APM Vol. 3 "VMMCALL"); outside guest
    mode the monitor's hypercall (``hypercall``, KVM's ABI)."""

    def h_vmmcall(cpu, c) -> None:
        svm = cpu.svm
        if svm is not None and svm.guest:
            if svm.intercepted(EXIT_VMMCALL):
                raise SvmExit(EXIT_VMMCALL, next_rip=cpu.rip)
            raise CpuFault(UD)
        hypercall(cpu, c)

    return h_vmmcall


def _msr_intercepted(cpu, write: bool) -> bool:
    index = cpu.r[1] & 0xFFFFFFFF
    for base, off in MSRPM_RANGES:
        if base <= index < base + 0x2000:
            bit = 2 * (index - base) + write
            return bool(cpu.phys_read(cpu.svm.msrpm + off + bit // 8, 1) >> (bit % 8) & 1)
    return True


def intercepting(name: str, handler, bit: int | None):
    """``handler`` with its SVM intercept checked first in guest mode (after #GP for CPL)."""
    is_msr = name in ("rdmsr", "wrmsr")

    def intercepted_handler(cpu, c) -> None:
        svm = cpu.svm
        if svm is not None and svm.guest:
            insn = c[0]
            if insn.privileged and cpu.cpl != 0:
                raise CpuFault(GP, 0)
            if is_msr:
                if svm.intercepts >> EXIT_MSR & 1 and _msr_intercepted(cpu, name == "wrmsr"):
                    raise SvmExit(EXIT_MSR, int(name == "wrmsr"), next_rip=cpu.rip)
            elif name == "int3":
                if svm.intercepts >> (EXIT_EXCP_BASE + 3) & 1:
                    raise SvmExit(EXIT_EXCP_BASE + 3, next_rip=cpu.rip)
            elif svm.intercepts >> bit & 1:
                raise SvmExit(bit, next_rip=cpu.rip)
        handler(cpu, c)

    intercepted_handler.__name__ = f"svm_{getattr(handler, '__name__', name)}"
    return intercepted_handler


def register(helpers: dict) -> None:
    """Add the SVM instructions to ``helpers`` and wrap the interceptable ones."""
    for name, bit in INSTRUCTION_INTERCEPTS.items():
        if name in helpers:
            helpers[name] = intercepting(name, helpers[name], bit)
    for name in ("rdmsr", "wrmsr", "int3"):
        if name in helpers:
            helpers[name] = intercepting(name, helpers[name], None)
    helpers["vmmcall"] = make_vmmcall(helpers["vmmcall"])
    helpers.update({"vmrun": h_vmrun, "vmload": h_vmload, "vmsave": h_vmsave,
                    "stgi": h_stgi, "clgi": h_clgi, "invlpga": h_invlpga, "skinit": h_skinit})
