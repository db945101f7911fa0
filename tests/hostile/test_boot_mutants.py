"""Corrupt guest images: ``x86vm run`` rejects a Multiboot, bzImage or PVH mutant in one
``x86vm: error:`` line with status 2, or runs it to the guest's own end, never a traceback or a
hang (the loaders in machine/boot/ check every field they read). A seeded sample of
``tests/hostile/boot_mutants.py``, which is the full pass; its figures are in
docs/hostile-input.md."""

from __future__ import annotations

import io

import pytest

from hostile.boot_mutants import compare, judge

pytestmark = pytest.mark.oracle("gcc", "binutils")

SAMPLE = 40
"""Mutants of each format in the default suite (about 15 s on the emu backend)."""


def test_sample_of_mutants_is_rejected_in_one_line_or_runs():
    report = io.StringIO()
    tally = compare(SAMPLE, seed=8, backend="emu", timeout="0.02", out=report)
    assert tally["mutants"] == 3 * SAMPLE
    assert (tally["failures"], tally["hangs"]) == (0, 0), report.getvalue()
    # the sample exercises both outcomes, so it can fail either way
    assert tally["rejected (one line, status 2)"] > SAMPLE // 4
    assert tally["ran"] > SAMPLE // 4


@pytest.mark.parametrize("status, stderr, problem", [
    (2, "x86vm: error: truncated ELF: program headers end at 100, the file is 64 bytes\n",
     None),
    (2, "x86vm: error: one\nx86vm: error: two\n", "rejection is not one 'x86vm: error:' line"),
    (2, "Traceback (most recent call last):\n", "traceback"),
    (124, "x86vm: guest stopped: timeout after 0.02 s\n", None),
    (85, "", None),
    (4, "", "unexpected status 4"),  # odd ones are debug-exit statuses: (value << 1) | 1
])
def test_the_judge_of_an_outcome(status, stderr, problem):
    """What the pass counts as a failure (so that a broken judge cannot pass everything)."""
    assert judge(status, stderr) == problem
