"""Decoder modes with other default operand/address sizes (objdump's ``-M data16``...).

A CPU mode fixes the default operand and address size (SDM Vol. 1 §3.6; Vol. 2 §2.2.1.2):
16/16 in 16-bit code, 32/32 in 32-bit code, 32/64 in 64-bit code, and the 66/67 prefixes
toggle them.  objdump can decode with the defaults changed (i386-dis.c's ``AFLAG``/``DFLAG``:
``-M data16``, ``addr16``...), which the code segment's D bit does for real in 32-bit code.
`decoder_mode` names such a mode for `decode`/`decode_all` (an int: the plain 16/32/64
when the sizes are the mode's own); a decoded core's ``mode`` is then a `SizedMode`, equal
to the CPU mode (16/32/64) and carrying the default sizes the formatters name prefixes by.
"""

from __future__ import annotations

DATA_FLIP = 0x100   # the default operand size is the other one (66 toggles it back)
ADDR_FLIP = 0x200   # the default address size is the other one (67 toggles it back)
INTEL64 = 0x400     # 64-bit code as Intel64 decodes it (objdump -M intel64): near branches
                    # ignore 66 (map flag near64), REX.W makes far pointers m16:64 (farw)
ATT_SUFFIX = 0x800  # objdump -M suffix in AT&T syntax: a size letter that reads the 66 makes it
                    # a used prefix, so a form its prefix table rejects with 66 is valid
                    # (66 0F C3: movntiw; badforms.suffix_takes_66)
DEFAULT_SIZES = {16: (16, 16), 32: (32, 32), 64: (32, 64)}
_OTHER_ADDRESS_SIZE = {16: 32, 32: 16, 64: 32}


class SizedMode(int):
    """A CPU mode (equal to 16, 32 or 64) decoded with the default `operand_size` and
    `address_size` given (bits), and as Intel64 (`intel64`) or AMD64 decodes it."""

    operand_size: int
    address_size: int
    intel64: bool
    att_suffix: bool

    def __new__(cls, key: int) -> SizedMode:
        mode = key & 0xFF
        self = super().__new__(cls, mode)
        osz, asz = DEFAULT_SIZES[mode]
        self.operand_size = (48 - osz) if key & DATA_FLIP else osz
        self.address_size = _OTHER_ADDRESS_SIZE[mode] if key & ADDR_FLIP else asz
        self.intel64 = bool(key & INTEL64)
        self.att_suffix = bool(key & ATT_SUFFIX)
        return self

    def __repr__(self) -> str:
        return (f"SizedMode({int(self)}, data{self.operand_size}, addr{self.address_size}"
                + (", intel64" if self.intel64 else "") + (", att-suffix" if self.att_suffix
                                                           else "") + ")")


def decoder_mode(mode: int, operand_size: int | None = None,
                 address_size: int | None = None, intel64: bool = False,
                 att_suffix: bool = False) -> int:
    """The `decode` mode for CPU `mode` with these default sizes (None: the mode's own),
    in 64-bit mode as Intel64 (`intel64`) rather than AMD64 decodes it, and with the forms
    objdump -M suffix accepts in AT&T syntax (`att_suffix`, see ATT_SUFFIX)."""
    osz, asz = DEFAULT_SIZES[mode]
    key = mode | (INTEL64 if intel64 and mode == 64 else 0) | (ATT_SUFFIX if att_suffix else 0)
    if operand_size is not None and operand_size != osz:
        if operand_size not in (16, 32):
            raise ValueError(f"default operand size {operand_size} in {mode}-bit mode")
        key |= DATA_FLIP
    if address_size is not None and address_size != asz:
        if address_size != _OTHER_ADDRESS_SIZE[mode]:
            raise ValueError(f"default address size {address_size} in {mode}-bit mode")
        key |= ADDR_FLIP
    return key


def default_sizes(mode: int) -> tuple[int, int]:
    """The default (operand, address) size of a decoded core's ``mode``."""
    if type(mode) is SizedMode:
        return mode.operand_size, mode.address_size
    return DEFAULT_SIZES[mode]


_SIZED: dict[int, SizedMode] = {}


def sized_mode(key: int) -> SizedMode:
    """The (shared) SizedMode of a `decoder_mode` key above 64."""
    mode = _SIZED.get(key)
    if mode is None:
        mode = _SIZED[key] = SizedMode(key)
    return mode
