"""Operand model of a decoded instruction: registers, memory, immediates, branch targets.

Register objects are interned (one object per register), so decoding allocates only memory
operands and immediates.  All fields are plain data; formatters and the CPU read them.
"""

from __future__ import annotations


class Reg:
    """A register. `cls` is gpr/seg/cr/dr/mmx/xmm/ymm/zmm/k/st/port; `size` in bytes."""

    __slots__ = ("name", "cls", "num", "size")

    def __init__(self, name: str, cls: str, num: int, size: int) -> None:
        self.name, self.cls, self.num, self.size = name, cls, num, size

    def __repr__(self) -> str:
        return f"Reg({self.name})"


class Mem:
    """A memory operand: segment:[base + index*scale + disp] of `size` bytes (0 = unsized).

    `segment` is the effective segment register's name (SDM Vol. 1 §3.7.4: an override
    prefix, else SS for an rBP/rSP base, ES for the destination of a string instruction,
    else DS; in 64-bit mode a CS/DS/ES/SS override is ignored), `override` whether a segment
    prefix chose it, `implicit` whether it is a string instruction's rSI/rDI operand (or
    XLAT's rBX+AL) rather than a ModRM/moffs address.  `disp_size` is the encoded displacement
    width (0, 1, 2, 4 or 8); `target` is the absolute address of a RIP/EIP-relative operand,
    else None; `moffs` marks MOV A0-A3's address without ModRM.
    """

    __slots__ = ("size", "segment", "base", "index", "scale", "disp", "disp_size",
                 "addr_size", "target", "moffs", "override", "implicit")

    def __init__(self, size, segment, base, index, scale, disp, disp_size, addr_size,
                 target=None, moffs=False, override=False, implicit=False):
        self.moffs = moffs
        self.size = size
        self.segment = segment
        self.base = base
        self.index = index
        self.scale = scale
        self.disp = disp
        self.disp_size = disp_size
        self.addr_size = addr_size
        self.target = target
        self.override = override
        self.implicit = implicit

    @property
    def seg(self) -> str | None:
        """The segment objdump prints: an override, or a string operand's always."""
        return self.segment if self.override or self.implicit else None

    @property
    def rip(self) -> bool:
        return self.target is not None

    def moved(self, disp: int, target: int | None) -> Mem:
        """This operand with another displacement (and RIP-relative target)."""
        return Mem(self.size, self.segment, self.base, self.index, self.scale, disp,
                   self.disp_size, self.addr_size, target, self.moffs, self.override,
                   self.implicit)

    def __repr__(self) -> str:
        return (f"Mem(size={self.size}, segment={self.segment}, base={self.base}, "
                f"index={self.index}, scale={self.scale}, disp={self.disp:#x})")


def default_segment(base: Reg | None) -> str:
    """The segment of an address without override (SDM Vol. 1 §3.7.4): SS with an rBP/rSP
    base, else DS."""
    return "ss" if base is not None and base.cls == "gpr" and base.num in (4, 5) else "ds"


class Imm:
    """An immediate, already sign-extended (if the encoding says so) and masked to `size`."""

    __slots__ = ("value", "size")

    def __init__(self, value: int, size: int) -> None:
        self.value, self.size = value, size

    def __repr__(self) -> str:
        return f"Imm({self.value:#x})"


class Rel:
    """A relative branch target resolved to an absolute address."""

    __slots__ = ("target",)

    def __init__(self, target: int) -> None:
        self.target = target

    def __repr__(self) -> str:
        return f"Rel({self.target:#x})"


class Far:
    """A far pointer immediate seg:offset (ljmp/lcall ptr16:16/32)."""

    __slots__ = ("seg", "offset", "size")

    def __init__(self, seg: int, offset: int, size: int) -> None:
        self.seg, self.offset, self.size = seg, offset, size


class ShiftOne:
    """The implicit count 1 of D0/D1 shifts (SDM: operand "1")."""

    __slots__ = ()


SHIFT_ONE = ShiftOne()


class BadOperand:
    """A ModRM operand of the wrong form (register for a memory-only operand or the reverse)
    where objdump prints "(bad)" in its place instead of rejecting the instruction."""

    __slots__ = ()


BAD_OPERAND = BadOperand()


class BadMemory(BadOperand):
    """A memory operand objdump cannot form (VSIB without a SIB byte): "(bad)", which Intel
    syntax still prefixes with the operand size; a segment override shows ("%fs:(bad)")."""

    __slots__ = ("size", "seg")

    def __init__(self, size: int, seg: str | None = None) -> None:
        self.size = size
        self.seg = seg


def _regs(names: list[str], cls: str, size: int) -> list[Reg]:
    return [Reg(n, cls, i, size) for i, n in enumerate(names)]


_G64 = "rax rcx rdx rbx rsp rbp rsi rdi r8 r9 r10 r11 r12 r13 r14 r15".split()
_G32 = "eax ecx edx ebx esp ebp esi edi".split() + [f"r{i}d" for i in range(8, 16)]
_G16 = "ax cx dx bx sp bp si di".split() + [f"r{i}w" for i in range(8, 16)]
_G8REX = "al cl dl bl spl bpl sil dil".split() + [f"r{i}b" for i in range(8, 16)]
_G8LEGACY = "al cl dl bl ah ch dh bh".split()

#: General-purpose registers by size in bytes, indexed by register number (0-15).
GPR = {8: _regs(_G64, "gpr", 8), 4: _regs(_G32, "gpr", 4), 2: _regs(_G16, "gpr", 2),
       1: _regs(_G8REX, "gpr", 1)}
#: 8-bit registers without a REX prefix: 4-7 are ah ch dh bh.
GPR8_LEGACY = _regs(_G8LEGACY, "gpr", 1)
SEG = _regs("es cs ss ds fs gs".split() + ["?", "?"], "seg", 2)
CR = _regs([f"cr{i}" for i in range(16)], "cr", 8)
DR = _regs([f"db{i}" for i in range(16)], "dr", 8)
MMX = _regs([f"mm{i}" for i in range(8)], "mmx", 8)
XMM = _regs([f"xmm{i}" for i in range(32)], "xmm", 16)
YMM = _regs([f"ymm{i}" for i in range(32)], "ymm", 32)
ZMM = _regs([f"zmm{i}" for i in range(32)], "zmm", 64)
BND = _regs([f"bnd{i}" for i in range(4)], "bnd", 16) + [BAD_OPERAND] * 12   # bnd4+: objdump (bad)
TR = _regs([f"tr{i}" for i in range(8)], "tr", 4)
TMM = _regs([f"tmm{i}" for i in range(8)], "tmm", 1024) + [BAD_OPERAND] * 8    # tmm8+: (bad)
KREG = _regs([f"k{i}" for i in range(8)], "k", 8) + [BAD_OPERAND] * 24    # k8+: (bad)
ST = _regs(["st"] + [f"st({i})" for i in range(8)], "st", 10)   # ST[0] = "st", ST[1+i] = st(i)
PORT_DX = Reg("dx", "port", 2, 2)
BAD_INDEX = Reg("(bad)", "bad", 0, 0)      # a VSIB index objdump cannot name (EVEX.V')
#: objdump's explicit "no index" of a SIB byte (index field 100 without REX.X): it adds
#: nothing to the address; EIZ_ABSOLUTE is the one of a 32-bit address without a base in
#: 64-bit code, whose displacement objdump prints unsigned
RIZ = Reg("riz", "none", 4, 8)
EIZ = Reg("eiz", "none", 4, 4)
EIZ_ABSOLUTE = Reg("eiz", "none", 4, 4)
RIP = Reg("rip", "ip", 0, 8)
EIP = Reg("eip", "ip", 0, 4)

#: 16-bit addressing forms (SDM Table 2-1): r/m -> (base, index)
ADDR16 = [("bx", "si"), ("bx", "di"), ("bp", "si"), ("bp", "di"), ("si", None), ("di", None),
          ("bp", None), ("bx", None)]
ADDR16 = [(GPR[2][_G16.index(b)], GPR[2][_G16.index(i)] if i else None) for b, i in ADDR16]
