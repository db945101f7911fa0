"""test386.asm (a public CPU test ROM for 386-class processors, github.com/barotto/test386.asm,
held outside the repository) from the reset vector on emu: real mode, protected mode, ring 3,
virtual-8086 mode, task switches, paging and the memory-access faults, to POST 0xFF, and
its arithmetic/logic series printed on COM1 equal to the published reference line for line
(``scripts/test386`` does the work; this test reads its verdict). Slow: the ROM prints
~45,000 lines through the UART, one exit per byte."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support import oracles

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_test386_runs_to_its_end_and_prints_the_reference():
    oracles.require("test386")
    done = subprocess.run([sys.executable, str(ROOT / "scripts/test386"), str(oracles.TEST386),
                           "--backend", "emu", "--timeout", "1500"],
                          capture_output=True, text=True, timeout=1800)
    print(done.stdout)
    assert "last POST FF" in done.stdout, done.stdout
    assert done.stdout.rstrip().endswith("PASS") and done.returncode == 0, done.stdout
