"""A seeded sample of the structured opcode-space sweep (tests/isa_sweep.py) against objdump.

The sweep lists one short encoding per grid point -- every opcode of every map with each
mandatory prefix / VEX.pp, W, vector length, EVEX.b, ModRM form and an operand cut off by the
end of the code -- and compares objdump's first instruction with ours.  Random bytes almost
never reach these corners; the full grid (`python3 tests/isa_sweep.py`) prints every group.
The sample is seeded, so its mismatches are exact: each must be listed in
tests/oracle/known_mismatches.jsonl (suite ``sweep:SPACE``), and nothing else may differ
(docs/isa.md lists the open groups).  Expected text comes from objdump on this machine.
"""

from __future__ import annotations

import pytest

from isa_sweep import compare_batch, grid
from oracle.known import assert_known

pytestmark = pytest.mark.oracle("objdump-2.40")

SAMPLE = 3000
#: the sampled spaces and modes
SPACES_MODES = [("evex", 32), ("evex", 64), ("evex-fields", 16), ("evex-fields", 32),
                ("evex-fields", 64), ("legacy", 16), ("legacy", 32), ("legacy", 64),
                ("vex", 32), ("vex", 64)]


@pytest.mark.parametrize(("space", "mode"), SPACES_MODES)
@pytest.mark.parametrize("syntax", ["att", "intel"])
def test_sampled_opcode_grid_matches_objdump(space: str, mode: int, syntax: str) -> None:
    items = grid(space, mode, SAMPLE, seed=mode)
    code = dict(items)
    wrong = compare_batch(items, mode, syntax)
    assert_known(f"sweep:{space}", mode, syntax,
                 [(code[label].hex(), want, got) for label, want, got in wrong])
