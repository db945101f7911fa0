"""Cache-line flush and write-back: CLFLUSH, CLFLUSHOPT, CLWB (SDM Vol. 2A "CLFLUSH",
"CLFLUSHOPT", "CLWB"). There is no cache to flush, so each only does what the SDM makes
architectural: the permission checks and faults of a byte load at the address (a page
fault, a non-canonical address); memory is not touched (an MMIO address is not read)."""

from __future__ import annotations

from x86vm.cpu.errors import UD, CpuFault
from x86vm.cpu.mmu import READ
from x86vm.cpu.operand import linear
from x86vm.isa.operands import Mem


def h_cache_line(cpu, c) -> None:
    _insn, (mem,) = c
    if type(mem) is not Mem:
        raise CpuFault(UD)
    cpu.translate(cpu._lin_mask(linear(cpu, mem)), READ)


CACHE_LINE_HELPERS = {"clflush": h_cache_line, "clflushopt": h_cache_line,
                      "clwb": h_cache_line}
