"""x86vm.isa: the opcode map, its loader and tables, and the decoder (see ARCHITECTURE.md).

    from x86vm.isa import decode, decode_all, Instruction
    insn = decode(b"\\x48\\x89\\xe5", address=0x1000, mode=64)
"""

from .cache import decode, decode_all
from .instruction import Instruction

__all__ = ["decode", "decode_all", "Instruction"]
