"""Relocations printed inside a listing, as ``objdump -d -r`` / ``-d -R`` print them.

objdump 2.40 ``disassemble_bytes``: after each line (an instruction, a data line or a ``...``
run of zeros), every relocation whose address falls before the end of what that line covered
is printed as ``\t\t\tADDR: TYPE\tSYMBOL[+-0xADDEND]`` (with ``-w``, ``\tADDR: ...`` on the
instruction's own line). Type names are BFD's howto names, which are the psABI names of
elf.h (x86-64 psABI section 4.4, i386 psABI section 4.4) except i386's ``R_386_JUMP_SLOT``.
"""

from __future__ import annotations

from collections.abc import Callable

from x86vm.disasm.elf import SEC_ABS, DynamicReloc, Symbol

X86_64_TYPES: dict[int, str] = {
    0: "R_X86_64_NONE", 1: "R_X86_64_64", 2: "R_X86_64_PC32", 3: "R_X86_64_GOT32",
    4: "R_X86_64_PLT32", 5: "R_X86_64_COPY", 6: "R_X86_64_GLOB_DAT", 7: "R_X86_64_JUMP_SLOT",
    8: "R_X86_64_RELATIVE", 9: "R_X86_64_GOTPCREL", 10: "R_X86_64_32", 11: "R_X86_64_32S",
    12: "R_X86_64_16", 13: "R_X86_64_PC16", 14: "R_X86_64_8", 15: "R_X86_64_PC8",
    16: "R_X86_64_DTPMOD64", 17: "R_X86_64_DTPOFF64", 18: "R_X86_64_TPOFF64",
    19: "R_X86_64_TLSGD", 20: "R_X86_64_TLSLD", 21: "R_X86_64_DTPOFF32",
    22: "R_X86_64_GOTTPOFF", 23: "R_X86_64_TPOFF32", 24: "R_X86_64_PC64",
    25: "R_X86_64_GOTOFF64", 26: "R_X86_64_GOTPC32", 27: "R_X86_64_GOT64",
    28: "R_X86_64_GOTPCREL64", 29: "R_X86_64_GOTPC64", 30: "R_X86_64_GOTPLT64",
    31: "R_X86_64_PLTOFF64", 32: "R_X86_64_SIZE32", 33: "R_X86_64_SIZE64",
    34: "R_X86_64_GOTPC32_TLSDESC", 35: "R_X86_64_TLSDESC_CALL", 36: "R_X86_64_TLSDESC",
    37: "R_X86_64_IRELATIVE", 38: "R_X86_64_RELATIVE64", 41: "R_X86_64_GOTPCRELX",
    42: "R_X86_64_REX_GOTPCRELX",
    250: "R_X86_64_GNU_VTINHERIT", 251: "R_X86_64_GNU_VTENTRY",
}
I386_TYPES: dict[int, str] = {
    0: "R_386_NONE", 1: "R_386_32", 2: "R_386_PC32", 3: "R_386_GOT32", 4: "R_386_PLT32",
    5: "R_386_COPY", 6: "R_386_GLOB_DAT", 7: "R_386_JMP_SLOT", 8: "R_386_RELATIVE",
    9: "R_386_GOTOFF", 10: "R_386_GOTPC", 11: "R_386_32PLT", 14: "R_386_TLS_TPOFF",
    15: "R_386_TLS_IE", 16: "R_386_TLS_GOTIE", 17: "R_386_TLS_LE", 18: "R_386_TLS_GD",
    19: "R_386_TLS_LDM", 20: "R_386_16", 21: "R_386_PC16", 22: "R_386_8", 23: "R_386_PC8",
    24: "R_386_TLS_GD_32", 25: "R_386_TLS_GD_PUSH", 26: "R_386_TLS_GD_CALL",
    27: "R_386_TLS_GD_POP", 28: "R_386_TLS_LDM_32", 29: "R_386_TLS_LDM_PUSH",
    30: "R_386_TLS_LDM_CALL", 31: "R_386_TLS_LDM_POP", 32: "R_386_TLS_LDO_32",
    33: "R_386_TLS_IE_32", 34: "R_386_TLS_LE_32", 35: "R_386_TLS_DTPMOD32",
    36: "R_386_TLS_DTPOFF32", 37: "R_386_TLS_TPOFF32", 38: "R_386_SIZE32",
    39: "R_386_TLS_GOTDESC", 40: "R_386_TLS_DESC_CALL", 41: "R_386_TLS_DESC",
    42: "R_386_IRELATIVE", 43: "R_386_GOT32X",
    250: "R_386_GNU_VTINHERIT", 251: "R_386_GNU_VTENTRY",
}
I386_TYPES[7] = "R_386_JUMP_SLOT"  # BFD's howto name for R_386_JMP_SLOT


def type_name(x86_64: bool, rtype: int) -> str:
    """BFD's name for relocation type ``rtype`` of an x86-64 (or x32) or an i386 file."""
    names = X86_64_TYPES if x86_64 else I386_TYPES
    return names.get(rtype, "*unknown*")


def reloc_text(reloc: DynamicReloc, place: int, x86_64: bool, digits: int, wide: bool,
               no_addresses: bool, symbol_name: Callable[[Symbol], str]) -> str:
    """One relocation line (with its newline) for a reloc applying at address ``place``."""
    mask = (1 << 4 * digits) - 1
    text = "\t" if wide else "\t\t\t"
    if not no_addresses:
        text += f"{place & mask:x}: "
    # a relocation matched to a PLT stub while making the name@plt symbols has lost its howto
    # in BFD (elfxx-x86.c marks it used), so objdump prints it as *unknown*
    name = "*unknown*" if reloc.plt_used else type_name(x86_64, reloc.type)
    text += name + "\t"
    symbol = reloc.symbol
    if symbol is None:
        text += "*ABS*"
    elif symbol.name:
        text += symbol_name(symbol)
    else:
        section = symbol.section_name if symbol.section != SEC_ABS else "*ABS*"
        text += section or "*unknown*"
    addend = reloc.addend & ((1 << 64) - 1)
    if addend:
        if addend >> 63:
            text += f"-0x{((1 << 64) - addend) & mask:x}"
        else:
            text += f"+0x{addend & mask:x}"
    return text + "\n"
