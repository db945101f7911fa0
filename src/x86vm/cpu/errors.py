"""What stops an instruction: an architectural exception, or an access the monitor must do.

These are raised inside instruction semantics and caught by the CPU's dispatcher
(:meth:`x86vm.cpu.core.Cpu.run`): a :class:`CpuFault` is delivered to the guest through the
IVT/IDT; a :class:`NeedsRead` stops the instruction *before any architectural write*, the
monitor supplies the value, and the instruction runs again from its start with the value
replayed (the path of KVM's emulator after an EPT violation).
"""

from __future__ import annotations

# exception vectors (SDM Vol. 3A Table 6-1)
DE, DB, NMI, BP, OF, BR, UD, NM, DF, TS, NP, SS, GP, PF, MF, AC, MC, XM = (
    0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 16, 17, 18, 19)
WITH_ERROR_CODE = frozenset((DF, TS, NP, SS, GP, PF, AC))
CONTRIBUTORY = frozenset((DE, TS, NP, SS, GP))
# fault-class exceptions (Table 6-1; #VE 20, #CP 21): their RFLAGS image has RF set (SDM
# Vol. 3B §17.3.1.1), so the IRET back does not re-trigger an instruction breakpoint. #DB is
# left out: the CPU raises it here as a trap (single step, data breakpoints).
FAULT_CLASS = frozenset((DE, BR, UD, NM, TS, NP, SS, GP, PF, MF, AC, XM, 20, 21))


class CpuFault(Exception):
    """An exception the guest sees: ``vector`` with ``error_code`` (None if it has none)."""

    def __init__(self, vector: int, error_code: int | None = None, note: str = "") -> None:
        super().__init__(vector, error_code, note)
        self.vector = vector
        self.error_code = error_code
        self.note = note


class NeedsRead(Exception):
    """A read of a port (``port=True``) or of guest-physical ``address`` no RAM backs."""

    def __init__(self, address: int, size: int, port: bool = False, count: int = 1) -> None:
        super().__init__(address, size, port, count)
        self.address, self.size, self.port, self.count = address, size, port, count


class TripleFault(Exception):
    """An exception while delivering a double fault: the processor shuts down."""


def fault(vector: int, error_code: int | None = None, note: str = "") -> CpuFault:
    return CpuFault(vector, error_code, note)
