"""The shape of each paging mode and the canonical-address rule, as data.

One description for every page walker: the CPU's (cpu/mmu.py, which adds permissions,
accessed/dirty bits and #PF) and the debugger's (trace/paging.py, which reads what is mapped).

Paging modes (SDM Vol. 3A §4.1.1, Table 4-1): none (CR0.PG = 0); 32-bit (CR4.PAE = 0, §4.3);
PAE (CR4.PAE = 1, IA32_EFER.LME = 0, §4.4); 4-level and 5-level (IA32_EFER.LMA = 1, CR4.LA57
= 0 or 1, §4.5). A walk starts at CR3 and at each level takes ``index_bits`` bits of the
linear address from bit ``shift`` to pick an entry of ``entry_size`` bytes; an entry with PS
(bit 7) set maps a page of ``1 << shift`` bytes at a level whose ``large`` is true, is a
reserved-bit violation at a 64-bit level whose ``large`` is false (PML5E, PML4E: §4.5.4
Tables 4-15 and 4-17), and PAT at the last level. PAE's four PDPTEs are loaded from CR3
differently (§4.4.1) and are the first level of ``LEVELS["PAE"]``.

Canonical addresses (SDM Vol. 1 §3.3.7.1, Vol. 3A §4.5): with 4-level paging bits 63:47 of a
linear address are all equal, with 5-level paging bits 63:56. Two widths apply (KVM models
them the same way, arch/x86/kvm/x86.h ``is_noncanonical_address``): a memory access (code
fetch, data, stack) is checked against the width CR4.LA57 selects; a value the CPU only stores
for later — an MSR that holds an address (FS/GS/KERNEL_GS base, LSTAR, CSTAR,
SYSENTER_ESP/EIP), a GDTR/IDTR base from LGDT/LIDT, a TSS or LDT base from LTR/LLDT — against
the widest the processor supports, whatever CR4.LA57 holds.
"""

from __future__ import annotations

from typing import NamedTuple

from x86vm.cpu.state import CR0_PE, CR0_PG, CR4_LA57, CR4_PAE, EFER_LMA


class Level(NamedTuple):
    """One level of a page walk."""

    name: str         # the SDM's name of its entries
    shift: int        # the lowest linear-address bit it translates
    index_bits: int   # how many bits index its table
    entry_size: int   # bytes per entry
    large: bool       # PS = 1 maps a (1 << shift)-byte page here


_TAIL_64 = (Level("PDPTE", 30, 9, 8, True), Level("PDE", 21, 9, 8, True),
            Level("PTE", 12, 9, 8, False))
LEVELS: dict[str, tuple[Level, ...]] = {
    "32-bit": (Level("PDE", 22, 10, 4, True), Level("PTE", 12, 10, 4, False)),
    "PAE": (Level("PDPTE", 30, 2, 8, False), Level("PDE", 21, 9, 8, True),
            Level("PTE", 12, 9, 8, False)),
    "4-level": (Level("PML4E", 39, 9, 8, False), *_TAIL_64),
    "5-level": (Level("PML5E", 48, 9, 8, False), Level("PML4E", 39, 9, 8, False), *_TAIL_64),
}
LINEAR_BITS = {"4-level": 48, "5-level": 57}
"""Linear-address width of the IA-32e paging modes (the rest are 32-bit)."""


def paging_mode(cr0: int, cr4: int, efer: int) -> str:
    """"none", "32-bit", "PAE", "4-level" or "5-level" (SDM Vol. 3A Table 4-1)."""
    if not cr0 & CR0_PG or not cr0 & CR0_PE:
        return "none"
    if not cr4 & CR4_PAE:
        return "32-bit"
    if not efer & EFER_LMA:
        return "PAE"
    return "5-level" if cr4 & CR4_LA57 else "4-level"


def canonical(address: int, bits: int) -> bool:
    """Whether bits 63:``bits``-1 of the 64-bit ``address`` are all equal."""
    top = address >> (bits - 1)
    return top == 0 or top == (1 << (65 - bits)) - 1


def access_width(cr4: int) -> int:
    """The width memory accesses are checked against in IA-32e mode: 57 under CR4.LA57."""
    return 57 if cr4 & CR4_LA57 else 48
