"""Corrupt ELF files: ``x86vm disasm`` never raises a traceback, and accepts or refuses each
mutant of the ELF header exactly as objdump 2.40 does (BFD's ``elf_object_p`` checks,
x86vm/disasm/elfcheck.py). ``python3 tests/hostile/elf_mutants.py 10000`` is the full run,
every kind of mutation (section headers too, where x86vm still differs: docs/disasm.md)."""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from hostile.elf_mutants import build_seeds, mutate, run_objdump, run_x86vm

pytestmark = pytest.mark.oracle("gcc", "objdump-2.40")

ET_CORE = 4
SRC = str(Path(__file__).resolve().parents[2] / "src")


def known_gap(seed: bytes, mutant: bytes) -> str | None:
    """The two header mutations whose objdump verdict comes from BFD code x86vm does not
    reproduce yet; anything else that disagrees is a failure."""
    is64 = seed[4] == 2
    e_type = struct.unpack_from("<H", mutant, 16)[0]
    if e_type == ET_CORE:
        return "ET_CORE: objdump reads it through BFD's core-file format"
    at = 62 if is64 else 50
    old, new = (struct.unpack_from("<H", d, at)[0] for d in (seed, mutant))
    if old != new:
        return "e_shstrndx moved to another section: BFD's section processing decides"
    return None


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    return build_seeds(tmp_path_factory.mktemp("elf-seeds"))


def test_header_mutants_are_accepted_or_refused_like_objdump(seeds, tmp_path):
    rng = random.Random(8)
    path = str(tmp_path / "mutant")
    names = sorted(seeds)
    unexplained, gaps = [], 0
    for i in range(240):
        seed = seeds[names[i % len(names)]]
        data = mutate(seed, rng, header_only=True)
        Path(path).write_bytes(data)
        ours, theirs = run_x86vm(path), run_objdump(path)
        assert not ours.traceback, f"mutant {i}: traceback"
        if (ours.status == 0) != (theirs == 0):
            if known_gap(seed, data) is None:
                unexplained.append((i, ours.status, theirs, data[:64].hex()))
            else:
                gaps += 1
    assert not unexplained
    assert gaps < 12  # the known gaps stay rare corners, not the rule


def test_any_mutant_gives_a_listing_or_one_error_line(seeds, tmp_path):
    """Section headers, string tables, truncation: no traceback, one line when refused."""
    rng = random.Random(9)
    path = str(tmp_path / "mutant")
    for i, name in enumerate(sorted(seeds) * 25):
        Path(path).write_bytes(mutate(seeds[name], rng))
        done = subprocess.run([sys.executable, "-m", "x86vm", "disasm", "-d", path],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONPATH": SRC}) if i % 20 == 0 else None
        if done is not None:
            assert "Traceback" not in done.stderr
            errors = [line for line in done.stderr.splitlines() if "error:" in line]
            assert done.returncode in (0, 1) and len(errors) <= 1, done.stderr
        else:
            assert not run_x86vm(path).traceback, f"mutant {i} of {name}"
