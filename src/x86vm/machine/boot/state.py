"""The architectural state a boot loader hands to a vCPU at the guest's entry point.

Backend-neutral: the KVM backend turns it into ``kvm_regs``/``kvm_sregs``; the emulator loads
it into its CPU state. Segment fields follow the descriptor layout (SDM Vol. 3A §3.4.5): the
hidden part of each segment register is given explicitly, as a loader leaves it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

CR0_PE = 1 << 0
CR0_ET = 1 << 4
CR0_NE = 1 << 5
CR0_PG = 1 << 31
CR4_PAE = 1 << 5
EFER_LME = 1 << 8
EFER_LMA = 1 << 10

GPR_NAMES = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")


@dataclass(frozen=True)
class Segment:
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
FLAT32_CODE = Segment(selector=0x10, limit=0xFFFFFFFF, type=0xB, db=1, g=1)
FLAT32_DATA = Segment(selector=0x18, limit=0xFFFFFFFF, type=0x3, db=1, g=1)
LONG64_CODE = Segment(selector=0x10, limit=0xFFFFFFFF, type=0xB, l=1, g=1)
LONG64_DATA = FLAT32_DATA
TSS_SEGMENT = Segment(selector=0x20, limit=0x67, type=0xB, s=0)
NULL_LDT = Segment(type=0x2, s=0, present=1, limit=0xFFFF)


@dataclass(frozen=True)
class TableRegister:
    base: int = 0
    limit: int = 0xFFFF


@dataclass
class EntryState:
    """Registers at entry. Unset general registers are zero; rflags bit 1 is always set."""

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
    cr0: int = CR0_ET | 0x60000000  # reset value: CD, NW, ET
    cr3: int = 0
    cr4: int = 0
    efer: int = 0

    @property
    def mode(self) -> str:
        if self.efer & EFER_LMA and self.cs.l:
            return "long64"
        if self.cr0 & CR0_PE:
            return "protected32" if self.cs.db else "protected16"
        return "real"

    def with_gprs(self, **values: int) -> EntryState:
        return replace(self, gprs={**self.gprs, **values})


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
