"""objdump 2.40's x86 disassembler options (``-M``), read as its i386-dis.c reads them.

objdump joins every ``-M`` argument with commas, drops blanks and empty items, and
``print_insn`` reads the items in order, each by its *prefix* (``intelx`` is ``intel``,
``data16xyz`` is ``data16``; an item no prefix matches is ignored, silently):

- ``x86-64`` / ``i386`` / ``i8086``: the decoder's mode; the first two also set the default
  address and operand size back to 32 bits, ``i8086`` sets both to 16 bits;
- ``intel`` / ``att``: the syntax; ``intel-mnemonic`` / ``att-mnemonic`` also choose the
  x87 names (``-mnemonic`` after ``att`` keeps the SysV386 names ``fsub``/``fsubr`` swapped
  in AT&T; ``intel-mnemonic`` selects Intel syntax *and* Intel names, which show in AT&T
  only once a later ``att`` switches the syntax back);
- ``addr16`` / ``addr32`` (16/32-bit modes) or ``addr32`` / ``addr64`` (64-bit mode, read
  against the mode in force at that item) and ``data16`` / ``data32``: the default address
  and operand size (objdump's ``AFLAG``/``DFLAG``; 66 and 67 toggle them);
- ``suffix``: AT&T size suffixes always; ``amd64`` / ``intel64``: the 64-bit ISA variant.

The mode starts from the file's machine (``-m``): i8086 starts with 16-bit sizes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class X86Options:
    """What the ``-M`` items leave: mode 16/32/64, the default operand and address size
    (objdump's DFLAG/AFLAG as bits: 16 or 32, 32 or 64 in 64-bit mode), syntax, names."""

    mode: int
    operand_size: int
    address_size: int
    syntax: str = "att"
    intel_mnemonic: bool = False
    suffix: bool = False
    isa64: str = ""

    @property
    def default_sizes(self) -> bool:
        """The mode's own default sizes (what x86vm decodes without size options)."""
        return (self.operand_size, self.address_size) == _DEFAULTS[self.mode]


_DEFAULTS = {16: (16, 16), 32: (32, 32), 64: (32, 64)}


def split_items(arguments: list[str]) -> list[str]:
    """The items of every ``-M`` argument, as objdump joins them (commas; blanks dropped)."""
    joined = ",".join(arguments)
    return [item for item in "".join(joined.split()).split(",") if item]


KNOWN_PREFIXES = ("amd64", "intel64", "x86-64", "i386", "i8086", "intel", "att", "addr",
                  "data", "suffix")
"""The item prefixes i386-dis.c reads (in its order); it ignores any other item."""


def parse_x86_options(arguments: list[str], mode: int, syntax: str = "att") -> X86Options:
    """Read the ``-M`` arguments in order from ``mode`` (the file's or ``-m``'s) and
    ``syntax`` (``-m i386:intel`` starts in Intel syntax), as i386-dis.c does."""
    dflag = aflag = mode != 16
    intel = syntax == "intel"
    intel_mnemonic = suffix = False
    isa64 = ""
    for item in split_items(arguments):
        if item.startswith("amd64"):
            isa64 = "amd64"
        elif item.startswith("intel64"):
            isa64 = "intel64"
        elif item.startswith("x86-64"):
            mode, aflag, dflag = 64, True, True
        elif item.startswith("i386"):
            mode, aflag, dflag = 32, True, True
        elif item.startswith("i8086"):
            mode, aflag, dflag = 16, False, False
        elif item.startswith("intel"):
            intel = True
            if item[5:].startswith("-mnemonic"):
                intel_mnemonic = True
        elif item.startswith("att"):
            intel = False
            if item[3:].startswith("-mnemonic"):
                intel_mnemonic = False
        elif item.startswith("addr"):
            width = item[4:6]
            if mode == 64:
                aflag = False if width == "32" else True if width == "64" else aflag
            else:
                aflag = False if width == "16" else True if width == "32" else aflag
        elif item.startswith("data"):
            width = item[4:6]
            dflag = False if width == "16" else True if width == "32" else dflag
        elif item.startswith("suffix"):
            suffix = True
    if mode == 64:
        sizes = (32 if dflag else 16, 64 if aflag else 32)
    else:
        sizes = (32 if dflag else 16, 32 if aflag else 16)
    return X86Options(mode, *sizes, "intel" if intel else "att", intel_mnemonic, suffix,
                      isa64)
