"""x86vm.isa: the opcode map, its loader and tables, and the decoder (see ARCHITECTURE.md).

    from x86vm.isa import decode, decode_all, Instruction, Op
    insn = decode(b"\\x48\\x89\\xe5", address=0x1000, mode=64)
    insn.op is Op.MOV; insn.operands      # (Reg(rbp), Reg(rsp)): Intel order, dest first

Everything a consumer (the CPU, the formatters in x86vm.disasm, tools) may use is exported
here; the other modules of the package are its internals.  docs/isa.md describes the API.
"""

from .cache import decode, decode_all
from .instruction import ADDRESS_MASK, Decoded, Instruction
from .maploader import ARCHITECTURE_FLAGS, EXECUTION_FLAGS, OBJDUMP_FLAGS
from .modes import SizedMode, decoder_mode, default_sizes
from .operands import (
    EIZ_ABSOLUTE,
    SHIFT_ONE,
    BadMemory,
    BadOperand,
    Far,
    Imm,
    Mem,
    Reg,
    Rel,
    ShiftOne,
)
from .tables import (
    SFX_ALWAYS,
    SFX_DATA,
    SFX_LEGACY,
    SFX_LONG,
    SFX_NODEFAULT,
    SFX_NOREG,
    SFX_RMMEM,
    SFX_RMMEM64,
    SFX_XY,
    SFX_XYZ,
    Spec,
    op_enum,
)

#: The operation ids of the shipped map (an IntEnum; see ops.py and docs/isa.md).
Op = op_enum()

__all__ = [
    "decode", "decode_all", "Instruction", "Decoded", "Op", "ADDRESS_MASK", "Spec",
    "Reg", "Mem", "Imm", "Rel", "Far", "ShiftOne", "SHIFT_ONE", "BadOperand", "BadMemory",
    "EIZ_ABSOLUTE", "ARCHITECTURE_FLAGS", "EXECUTION_FLAGS", "OBJDUMP_FLAGS",
    "SFX_ALWAYS", "SFX_DATA", "SFX_LEGACY", "SFX_LONG", "SFX_NODEFAULT", "SFX_NOREG",
    "SFX_RMMEM", "SFX_RMMEM64", "SFX_XY", "SFX_XYZ", "SizedMode", "decoder_mode",
    "default_sizes",
]
