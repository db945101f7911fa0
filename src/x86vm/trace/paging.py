"""Guest-virtual memory for debuggers: segment + page-table walk, then checked RAM accesses.

The walk reads the guest's tables as the processor does (SDM Vol. 3A ch. 4): no paging when
CR0.PG is clear; 32-bit paging with 4 MiB pages under CR4.PSE (§4.3); PAE with its four
PDPTEs and 2 MiB pages (§4.4); 4-level and, with CR4.LA57, 5-level paging with 1 GiB and
2 MiB pages (§4.5). Every table entry and every byte is read through :class:`GuestMemory`'s
checked accessors, so a guest's page tables pointing anywhere cost an error, never a host
access. Accessed/dirty bits are left alone and permissions are not checked: a debugger sees
what is mapped. The crash report and the gdb stub both read guest memory through here.
"""

from __future__ import annotations

from x86vm.cpu.state import CR0_PE, CR0_PG, CR4_PAE, CR4_PSE, EFER_LMA, RegisterState
from x86vm.machine.memory import GuestMemory, GuestMemoryError

CR4_LA57 = 1 << 12
PRESENT = 1 << 0
PAGE_SIZE_BIT = 1 << 7
ADDRESS_MASK = 0x000F_FFFF_FFFF_F000  # bits 51:12 of a 64-bit entry (MAXPHYADDR 52)
PAGE = 4096


class TranslationError(Exception):
    """A linear address the guest's page tables do not map (or whose tables are not RAM)."""

    def __init__(self, linear: int, reason: str) -> None:
        super().__init__(f"{linear:#x}: {reason}")
        self.linear = linear
        self.reason = reason


def paging_mode(state: RegisterState) -> str:
    """"none", "32-bit", "PAE", "4-level" or "5-level" (SDM Vol. 3A Table 4-1)."""
    if not state.cr0 & CR0_PG or not state.cr0 & CR0_PE:
        return "none"
    if not state.cr4 & CR4_PAE:
        return "32-bit"
    if not state.efer & EFER_LMA:
        return "PAE"
    return "5-level" if state.cr4 & CR4_LA57 else "4-level"


def _entry(memory: GuestMemory, gpa: int, size: int, linear: int, level: str) -> int:
    try:
        value = memory.read_int(gpa, size)
    except GuestMemoryError:
        raise TranslationError(linear, f"{level} at guest-physical {gpa:#x} is not RAM") from None
    if not value & PRESENT:
        raise TranslationError(linear, f"{level} not present")
    return value


def translate(memory: GuestMemory, state: RegisterState, linear: int) -> int:
    """The guest-physical address of ``linear`` under ``state``'s paging mode."""
    mode = paging_mode(state)
    if mode == "none":
        return linear & 0xFFFF_FFFF
    if mode == "32-bit":
        linear &= 0xFFFF_FFFF
        pde = _entry(memory, (state.cr3 & 0xFFFF_F000) | (linear >> 22) << 2, 4, linear, "PDE")
        if pde & PAGE_SIZE_BIT and state.cr4 & CR4_PSE:  # 4 MiB page, PSE-36 bits 20:13
            return (pde & 0xFFC0_0000) | ((pde >> 13) & 0xFF) << 32 | (linear & 0x3F_FFFF)
        pte = _entry(memory, (pde & 0xFFFF_F000) | ((linear >> 12) & 0x3FF) << 2, 4, linear,
                     "PTE")
        return (pte & 0xFFFF_F000) | (linear & 0xFFF)
    if mode == "PAE":
        linear &= 0xFFFF_FFFF
        table = (state.cr3 & 0xFFFF_FFE0) | ((linear >> 30) & 3) << 3
        levels = (("PDPTE", 30), ("PDE", 21), ("PTE", 12))
    else:
        bits = 57 if mode == "5-level" else 48
        top = linear >> (bits - 1)
        if top not in (0, (1 << (64 - bits + 1)) - 1):
            raise TranslationError(linear, "not canonical")
        names = (("PML5E", 48),) if bits == 57 else ()
        levels = (*names, ("PML4E", 39), ("PDPTE", 30), ("PDE", 21), ("PTE", 12))
        table = state.cr3 & ADDRESS_MASK
        table |= ((linear >> levels[0][1]) & 0x1FF) << 3
    for index, (name, shift) in enumerate(levels):
        entry = _entry(memory, table, 8, linear, name)
        if name in ("PDPTE", "PDE") and entry & PAGE_SIZE_BIT and not (mode == "PAE"
                                                                          and name == "PDPTE"):
            page_mask = (1 << shift) - 1
            return (entry & ADDRESS_MASK & ~page_mask) | (linear & page_mask)
        if name == "PTE":
            return (entry & ADDRESS_MASK) | (linear & 0xFFF)
        next_shift = levels[index + 1][1]
        table = (entry & ADDRESS_MASK) | ((linear >> next_shift) & 0x1FF) << 3
    raise AssertionError("unreachable")


def read_linear(memory: GuestMemory, state: RegisterState, linear: int, length: int) -> bytes:
    """``length`` bytes at ``linear``, page by page; :class:`TranslationError` (with
    ``.partial``, the bytes before the first unreadable one) if any byte is not readable."""
    out = bytearray()
    width = 64 if paging_mode(state) in ("4-level", "5-level") else 32
    wrap = (1 << width) - 1
    while len(out) < length:
        address = (linear + len(out)) & wrap
        chunk = min(length - len(out), PAGE - (address & (PAGE - 1)))
        try:
            out += memory.read(translate(memory, state, address), chunk)
        except (TranslationError, GuestMemoryError) as exc:
            error = exc if isinstance(exc, TranslationError) else \
                TranslationError(address, "not RAM")
            error.partial = bytes(out)  # type: ignore[attr-defined]
            raise error from None
    return bytes(out)


def write_linear(memory: GuestMemory, state: RegisterState, linear: int, data: bytes) -> None:
    """Write ``data`` at ``linear`` (every page is translated before any byte is written)."""
    pieces = []
    done = 0
    while done < len(data):
        address = linear + done
        chunk = min(len(data) - done, PAGE - (address & (PAGE - 1)))
        gpa = translate(memory, state, address)
        if not memory.is_ram(gpa, chunk):
            raise TranslationError(address, "not RAM")
        pieces.append((gpa, data[done:done + chunk]))
        done += chunk
    for gpa, piece in pieces:
        memory.write(gpa, piece)


def code_address(state: RegisterState) -> int:
    """The linear address of the next instruction: CS.base + RIP (base 0 in 64-bit code)."""
    if state.mode == "long64":
        return state.rip
    return (state.cs.base + state.rip) & 0xFFFF_FFFF


def stack_address(state: RegisterState) -> int:
    """The linear address of the top of the stack: SS.base + RSP (or SP/ESP by SS.B)."""
    rsp = state.gpr("rsp")
    if state.mode == "long64":
        return rsp
    rsp &= 0xFFFF_FFFF if state.ss.db else 0xFFFF
    return (state.ss.base + rsp) & 0xFFFF_FFFF
