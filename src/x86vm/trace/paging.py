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

from x86vm.cpu.paging import LEVELS, LINEAR_BITS, canonical
from x86vm.cpu.paging import paging_mode as _mode_of
from x86vm.cpu.state import CR4_PSE, RegisterState
from x86vm.machine.memory import GuestMemory, GuestMemoryError

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
    return _mode_of(state.cr0, state.cr4, state.efer)


def _entry(memory: GuestMemory, gpa: int, size: int, linear: int, level: str) -> int:
    try:
        value = memory.read_int(gpa, size)
    except GuestMemoryError:
        raise TranslationError(linear, f"{level} at guest-physical {gpa:#x} is not RAM") from None
    if not value & PRESENT:
        raise TranslationError(linear, f"{level} not present")
    return value


def translate(memory: GuestMemory, state: RegisterState, linear: int) -> int:
    """The guest-physical address of ``linear`` under ``state``'s paging mode (the levels
    of :data:`x86vm.cpu.paging.LEVELS`)."""
    mode = paging_mode(state)
    if mode == "none":
        return linear & 0xFFFF_FFFF
    levels = LEVELS[mode]
    if mode in LINEAR_BITS:
        if not canonical(linear, LINEAR_BITS[mode]):
            raise TranslationError(linear, "not canonical")
        table = state.cr3 & ADDRESS_MASK
    else:
        linear &= 0xFFFF_FFFF
        table = state.cr3 & (0xFFFF_FFE0 if mode == "PAE" else 0xFFFF_F000)
    for level in levels:
        mask = (1 << level.index_bits) - 1
        at = table + ((linear >> level.shift) & mask) * level.entry_size
        entry = _entry(memory, at, level.entry_size, linear, level.name)
        address = entry & (ADDRESS_MASK if level.entry_size == 8 else 0xFFFF_F000)
        if level is levels[-1]:
            return address | (linear & 0xFFF)
        if entry & PAGE_SIZE_BIT and level.large:
            if mode == "32-bit":
                if state.cr4 & CR4_PSE:   # 4 MiB page, PSE-36 bits 20:13
                    return ((entry & 0xFFC0_0000) | ((entry >> 13) & 0xFF) << 32
                            | (linear & 0x3F_FFFF))
            else:
                page_mask = (1 << level.shift) - 1
                return (address & ~page_mask) | (linear & page_mask)
        table = address
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
