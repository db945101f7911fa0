"""A seeded sample of the CLI fuzz (tests/hostile/cli_fuzz.py; the full run is that script):
no traceback, no hang past ``--timeout`` + 5 s, objdump's exit status where objdump has the
option."""

from __future__ import annotations

import random
import shutil

import pytest

from hostile import cli_fuzz
from support.oracles import require

SEED = 8
SAMPLE = 70
"""Cases in the default suite (about a minute on this host); the script runs all of them."""


def _sample(tmp_path_factory):
    work = tmp_path_factory.mktemp("cli-fuzz")
    cases = cli_fuzz.all_cases(work)
    return work, random.Random(SEED).sample(cases, SAMPLE)


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    if shutil.which("objdump") is None:
        pytest.skip("needs objdump")
    require("kvm")
    work, cases = _sample(tmp_path_factory)
    return cli_fuzz.fuzz(cases, work)


def test_no_traceback(verdicts):
    assert [v.case for v in verdicts if v.traceback] == []


def test_no_hang_past_the_timeout(verdicts):
    assert [v.case for v in verdicts if v.hang] == []


def test_objdump_exit_status_where_objdump_has_the_option(verdicts):
    compared = [v for v in verdicts if v.objdump_status is not None]
    assert compared, "the sample compares nothing with objdump"
    assert [(v.case.argv, v.status, v.objdump_status) for v in compared
            if v.status != v.objdump_status] == []


def test_the_sample_covers_both_commands_and_closed_streams(tmp_path_factory):
    _, cases = _sample(tmp_path_factory)
    assert {c.argv[0] for c in cases} == {"run", "disasm"}
    assert any(c.streams != "normal" for c in cases)
