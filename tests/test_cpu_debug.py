"""Breakpoints and single-step on the emu backend come back from run() as DebugStop."""

from __future__ import annotations

import pytest

from cpu.asmguest import assemble, assembler_missing, entry_for
from x86vm.machine.backend import DebugControl
from x86vm.machine.exits import DebugStop, IoExit
from x86vm.machine.vm import Machine

pytestmark = pytest.mark.skipif(assembler_missing() is not None, reason=str(assembler_missing()))

CODE = """
    mov $1, %eax
    add $2, %eax
target:
    add $3, %eax
    out %eax, $0xe0
    cli
    hlt"""


def _backend():
    m = Machine(memory_size=2 << 20, backend="emu")
    code = assemble(CODE, 32, 0x10000)
    m.memory.write(0x10000, code)
    m.backend.set_state(entry_for(m.memory, 32, 0x10000))
    return m, m.backend


def test_breakpoint_stops_before_the_instruction_and_resumes_past_it():
    m, b = _backend()
    with m:
        b.set_debug(DebugControl(breakpoints=(0x10008,)))   # target: after 5 + 3 bytes
        ex = b.run()
        assert isinstance(ex, DebugStop) and ex.pc == 0x10008
        assert b.get_state().gprs["rax"] == 3
        ex = b.run()
        assert isinstance(ex, IoExit) and ex.data == bytearray((6, 0, 0, 0))


def test_single_step_stops_after_each_instruction():
    m, b = _backend()
    with m:
        b.set_debug(DebugControl(single_step=True))
        pcs = []
        for _ in range(3):
            ex = b.run()
            assert isinstance(ex, DebugStop)
            pcs.append(ex.pc)
        assert pcs == [0x10005, 0x10008, 0x1000B]
