"""Corrupt ELF files: ``x86vm disasm -d`` never raises a traceback, and gives each mutant the
exit status and the standard-error lines objdump 2.40 gives it (BFD's ``elf_object_p`` and
``bfd_section_from_shdr`` checks, then what objdump reads next: x86vm/disasm/elfcheck.py).

Measured with ``python3 tests/hostile/elf_mutants.py 2000 [--header-only | --kind KIND]``
(seed 1, eight seed files), before → after this module modelled BFD's section processing
and what objdump reads next (docs/hostile-input.md has the table): every kind of mutation,
2,000 mutants: other exit status 266 → 0, same status but other error lines 312 → 0; ELF
header only: 1 → 0 and 166 → 0; section headers 513 → 0 and 360 → 0; program headers
227 → 0 and 525 → 0; tables 103 → 0 and 156 → 0; bytes 363 → 0 and 539 → 0; truncation
0 → 0. No traceback after (one, a name with braces, was found by the run and is a test
here)."""

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


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    return build_seeds(tmp_path_factory.mktemp("elf-seeds"))


def _compare(seeds, tmp_path, seed: int, count: int, header_only: bool,
             option: str = "-d") -> None:
    rng = random.Random(seed)
    path = str(tmp_path / "mutant")
    names = sorted(seeds)
    disagree = []
    for i in range(count):
        data = mutate(seeds[names[i % len(names)]], rng, header_only=header_only)
        Path(path).write_bytes(data)
        ours, theirs = run_x86vm(path, option), run_objdump(path, option)
        assert not ours.traceback, f"mutant {i}: traceback"
        if ((ours.status == 0) != (theirs.status == 0)) or ours.lines != theirs.lines:
            disagree.append((i, ours, theirs))
    assert disagree == []


def test_header_mutants_get_objdumps_status_and_lines(seeds, tmp_path):
    _compare(seeds, tmp_path, 8, 240, header_only=True)


def test_any_mutant_gets_objdumps_status_and_lines(seeds, tmp_path):
    """Section headers, string tables, symbols, truncation (elfcheck's section checks)."""
    _compare(seeds, tmp_path, 10, 240, header_only=False)


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


def test_every_section_listed_with_D_gets_objdumps_status_and_lines(seeds, tmp_path):
    """-D reads every section: NOBITS ones too large to allocate, compressed debugging
    sections whose data does not decompress ("bad value"), each skipped as objdump does."""
    _compare(seeds, tmp_path, 11, 160, header_only=False, option="-D")


def test_a_core_file_is_listed_by_its_segments(seeds, tmp_path):
    """ET_CORE: no object for BFD, but a core file (elf_core_file_p): its program headers
    become the sections load2, load3, load5a/load5b ..., listed as objdump lists them."""
    data = bytearray(seeds["pie"])
    struct.pack_into("<H", data, 16, ET_CORE)
    path = tmp_path / "core"
    path.write_bytes(bytes(data))
    for option in ("-d", "-D"):
        theirs = subprocess.run(["objdump", option, str(path)], capture_output=True, text=True)
        ours = subprocess.run([sys.executable, "-m", "x86vm", "disasm", option, str(path)],
                              capture_output=True, text=True, env={**os.environ,
                                                                   "PYTHONPATH": SRC})
        assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)
        assert "Disassembly of section load" in ours.stdout


def test_braces_in_a_section_name_are_just_bytes(seeds, tmp_path):
    """A name BFD quotes in a message ("no group info for section '.d{t}'") is printed as it
    is, never taken for a format string (it once raised ValueError)."""
    data = bytearray(seeds["object"])
    shoff, = struct.unpack_from("<Q", data, 40)
    shnum, shstrndx = struct.unpack_from("<HH", data, 60)
    strtab_at = struct.unpack_from("<Q", data, shoff + shstrndx * 64 + 24)[0]
    for index in range(1, shnum):
        header = shoff + index * 64
        name_at = strtab_at + struct.unpack_from("<I", data, header)[0]
        if data[name_at:name_at + 6] == b".data\0":
            data[name_at:name_at + 5] = b".d{t}"
            flags, = struct.unpack_from("<Q", data, header + 8)
            struct.pack_into("<Q", data, header + 8, flags | 0x200)  # SHF_GROUP
    path = tmp_path / "braces.o"
    path.write_bytes(bytes(data))
    ours, theirs = run_x86vm(str(path)), run_objdump(str(path))
    assert not ours.traceback
    assert (ours.status, ours.lines) == (theirs.status, theirs.lines)
    assert any("'.d{t}'" in line for line in ours.lines)
