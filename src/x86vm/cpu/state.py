"""The vCPU's register contract, shared by every backend, the boot loaders and gdb.

A :class:`RegisterState` is a backend-neutral snapshot of one vCPU: what a boot loader hands
to a vCPU at the guest's entry point, what ``Backend.get_state`` returns and
``Backend.set_state`` loads. The KVM backend turns it into ``kvm_regs``/``kvm_sregs``/MSRs/
``kvm_vcpu_events``; the Python CPU keeps its own state and converts at the boundary.

Segment fields follow the descriptor layout (SDM Vol. 3A §3.4.5): the hidden part of each
segment register (base, limit, attributes) is given explicitly, as a loader leaves it or as
the processor cached it when the selector was loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

# Control registers (SDM Vol. 3A §2.5)
CR0_PE = 1 << 0
CR0_MP = 1 << 1
CR0_EM = 1 << 2
CR0_TS = 1 << 3
CR0_ET = 1 << 4
CR0_NE = 1 << 5
CR0_WP = 1 << 16
CR0_AM = 1 << 18
CR0_NW = 1 << 29
CR0_CD = 1 << 30
CR0_PG = 1 << 31
CR4_VME = 1 << 0
CR4_PVI = 1 << 1
CR4_TSD = 1 << 2
CR4_DE = 1 << 3
CR4_PSE = 1 << 4
CR4_PAE = 1 << 5
CR4_MCE = 1 << 6
CR4_PGE = 1 << 7
CR4_PCE = 1 << 8
CR4_OSFXSR = 1 << 9
CR4_OSXMMEXCPT = 1 << 10
CR4_UMIP = 1 << 11
CR4_LA57 = 1 << 12
CR4_FSGSBASE = 1 << 16
CR4_PCIDE = 1 << 17
CR4_OSXSAVE = 1 << 18
CR4_SMEP = 1 << 20
CR4_SMAP = 1 << 21
CR4_PKE = 1 << 22
CR4_PKS = 1 << 24
# IA32_EFER (SDM Vol. 3A §2.2.1)
EFER_SCE = 1 << 0
EFER_LME = 1 << 8
EFER_LMA = 1 << 10
EFER_NXE = 1 << 11
# RFLAGS (SDM Vol. 1 §3.4.3)
RFLAGS_CF = 1 << 0
RFLAGS_FIXED = 1 << 1
RFLAGS_PF = 1 << 2
RFLAGS_AF = 1 << 4
RFLAGS_ZF = 1 << 6
RFLAGS_SF = 1 << 7
RFLAGS_TF = 1 << 8
RFLAGS_IF = 1 << 9
RFLAGS_DF = 1 << 10
RFLAGS_OF = 1 << 11
RFLAGS_IOPL = 3 << 12
RFLAGS_NT = 1 << 14
RFLAGS_RF = 1 << 16
RFLAGS_VM = 1 << 17
RFLAGS_AC = 1 << 18
RFLAGS_VIF = 1 << 19
RFLAGS_VIP = 1 << 20
RFLAGS_ID = 1 << 21

# MSRs a kernel touches (SDM Vol. 4 Table 2-2)
MSR_IA32_TSC = 0x10
MSR_IA32_APIC_BASE = 0x1B
MSR_IA32_SYSENTER_CS = 0x174
MSR_IA32_SYSENTER_ESP = 0x175
MSR_IA32_SYSENTER_EIP = 0x176
MSR_IA32_MISC_ENABLE = 0x1A0
MSR_IA32_PAT = 0x277
MSR_IA32_TSC_DEADLINE = 0x6E0
MSR_IA32_PKRS = 0x6E1
MSR_EFER = 0xC0000080
MSR_STAR = 0xC0000081
MSR_LSTAR = 0xC0000082
MSR_CSTAR = 0xC0000083
MSR_SFMASK = 0xC0000084
MSR_FS_BASE = 0xC0000100
MSR_GS_BASE = 0xC0000101
MSR_KERNEL_GS_BASE = 0xC0000102
MSR_TSC_AUX = 0xC0000103
STATE_MSRS = (MSR_IA32_TSC, MSR_IA32_APIC_BASE, MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP,
              MSR_IA32_SYSENTER_EIP, MSR_IA32_MISC_ENABLE, MSR_IA32_PAT, MSR_STAR, MSR_LSTAR,
              MSR_CSTAR, MSR_SFMASK, MSR_KERNEL_GS_BASE, MSR_TSC_AUX)
"""The MSRs a :class:`RegisterState` carries (EFER, FS/GS base live in their own fields)."""

GPR_NAMES = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
SEGMENT_NAMES = ("es", "cs", "ss", "ds", "fs", "gs")
"""In the SDM's Sreg encoding order (Vol. 2 Table 3-6): index = the ModRM.reg value."""


@dataclass(frozen=True)
class Segment:
    """A segment register: the visible selector and the hidden descriptor cache."""

    selector: int = 0
    base: int = 0
    limit: int = 0xFFFF
    type: int = 0x3  # data read/write, accessed
    s: int = 1  # code/data (not system)
    dpl: int = 0
    present: int = 1
    db: int = 0  # default operand size 32 (code) / big (stack)
    l: int = 0  # 64-bit code  # noqa: E741
    g: int = 0  # limit in 4 KiB units
    avl: int = 0
    unusable: int = 0


REAL_CODE = Segment(type=0xB)
REAL_DATA = Segment(type=0x3)
TSS_SEGMENT = Segment(selector=0x20, limit=0x67, type=0xB, s=0)
NULL_LDT = Segment(type=0x2, s=0, present=1, limit=0xFFFF)


@dataclass(frozen=True)
class TableRegister:
    """GDTR/IDTR: base and limit (SDM Vol. 3A §2.4)."""

    base: int = 0
    limit: int = 0xFFFF


@dataclass(frozen=True)
class PendingEvent:
    """An exception or interrupt accepted but not yet delivered (``kvm_vcpu_events``)."""

    vector: int
    kind: str = "exception"  # "exception" | "interrupt" | "nmi" | "soft"
    error_code: int | None = None


@dataclass(frozen=True)
class FpuState:
    """x87 and SSE registers, as FXSAVE holds them and gdb names them (SDM Vol. 2A FXSAVE,
    Vol. 1 §8.1): ``fsw`` with TOP, ``ftw`` the full 2-bit-per-register tag word, ``st``
    ST(0)..ST(7) as 80-bit patterns (stack order), ``xmm`` 128-bit ints. Only the emu backend
    fills it; elsewhere :attr:`RegisterState.fpu` is None ("not held")."""

    fcw: int = 0x037F
    fsw: int = 0
    ftw: int = 0xFFFF
    fop: int = 0
    fip: int = 0
    fcs: int = 0
    fdp: int = 0
    fds: int = 0
    st: tuple[int, ...] = (0,) * 8
    xmm: tuple[int, ...] = (0,) * 16
    mxcsr: int = 0x1F80


@dataclass
class RegisterState:
    """Registers of one vCPU. Unset general registers are zero; rflags bit 1 is always set.

    ``gprs`` maps :data:`GPR_NAMES` to values (missing = 0). ``msrs`` maps the indices of
    :data:`STATE_MSRS` a backend could read; FS/GS bases are the hidden bases of ``fs``/``gs``.
    """

    rip: int
    gprs: dict[str, int] = field(default_factory=dict)
    rflags: int = 0x2
    cs: Segment = REAL_CODE
    ds: Segment = REAL_DATA
    es: Segment = REAL_DATA
    fs: Segment = REAL_DATA
    gs: Segment = REAL_DATA
    ss: Segment = REAL_DATA
    tr: Segment = TSS_SEGMENT
    ldt: Segment = NULL_LDT
    gdt: TableRegister = TableRegister()
    idt: TableRegister = TableRegister()
    cr0: int = CR0_ET | CR0_CD | CR0_NW  # reset value (SDM Vol. 3A Table 10-1)
    cr2: int = 0
    cr3: int = 0
    cr4: int = 0
    cr8: int = 0
    efer: int = 0
    dr: tuple[int, ...] = (0, 0, 0, 0, 0xFFFF0FF0, 0x400)  # DR0-3, DR6, DR7 at reset
    msrs: dict[int, int] = field(default_factory=dict)
    pending: PendingEvent | None = None
    interrupt_shadow: bool = False
    fpu: FpuState | None = None  # x87/SSE registers, when the backend holds them (emu)

    @property
    def mode(self) -> str:
        """"long64", "compat", "protected32", "protected16", "vm86" or "real"."""
        if self.efer & EFER_LMA and self.cr0 & CR0_PE:
            return "long64" if self.cs.l else "compat"
        if self.cr0 & CR0_PE:
            if self.rflags & RFLAGS_VM:
                return "vm86"
            return "protected32" if self.cs.db else "protected16"
        return "real"

    def gpr(self, name: str) -> int:
        return self.gprs.get(name, 0)

    def with_gprs(self, **values: int) -> RegisterState:
        return replace(self, gprs={**self.gprs, **values})


EntryState = RegisterState
"""What a boot loader hands to the vCPU: a :class:`RegisterState` (the name loaders use)."""
