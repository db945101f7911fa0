"""The fast paths of the listing give the text the plain paths give (and objdump's).

* the linear sweep (``DecoderFormatter.decode_all``, line tails reused by bytes) against the
  one-instruction-at-a-time `Formatter` call, on objdump's test snippets (truncated and BadOp
  forms whose text depends on the bytes after them) and random bytes, in every mode;
* a listing split between forked processes (`parallel`) against the same listing in one
  process and against objdump, and a child that fails being replaced by its parent.
"""

from __future__ import annotations

import io
import os
import random
import subprocess

import pytest

from oracle.elfwriter import write_snippets_elf
from oracle.testdata import snippets_by_mode
from support.oracles import require_file
from x86vm.disasm import listing, parallel
from x86vm.disasm.elf import load_elf
from x86vm.disasm.listing import (
    ListingOptions,
    binary_image,
    decoder_formatter,
    elf_image,
    write_listing,
)

SYSTEM_BINARY = "/usr/bin/true"


def _one_at_a_time(mode: int, syntax: str):
    formatter = decoder_formatter(mode, syntax)
    return lambda data, offset, address, pa: formatter(data, offset, address, pa)


def _listing(image, formatter, options, jobs: int = 1) -> str:
    out = io.StringIO()
    write_listing(image, formatter, options, out.write, jobs)
    return out.getvalue()


@pytest.mark.parametrize("mode", [16, 32, 64])
def test_sweep_lists_snippets_as_one_instruction_at_a_time(tmp_path, mode) -> None:
    snippets = snippets_by_mode()[mode]
    sample = random.Random(mode).sample(snippets, min(600, len(snippets)))
    path = str(tmp_path / "snippets.o")
    write_snippets_elf(path, sample, 64 if mode == 64 else 32)
    for syntax in ("att", "intel"):
        for options in (ListingOptions(), ListingOptions(wide=True),
                        ListingOptions(insn_width=3)):
            texts = []
            for formatter in (decoder_formatter(mode, syntax), _one_at_a_time(mode, syntax)):
                with open(path, "rb") as stream:
                    image = elf_image(load_elf(path, stream))
                    image.mode = mode
                    texts.append(_listing(image, formatter, options))
            assert texts[0] == texts[1]
            assert texts[0].count("\n") > len(sample)


@pytest.mark.parametrize("mode", [16, 32, 64])
def test_sweep_lists_random_bytes_as_one_instruction_at_a_time(mode) -> None:
    rng = random.Random(mode + 100)
    # runs of zeros among the random bytes: the sweep restarts after each skipped run
    data = b"".join(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
                    + bytes(rng.choice([0, 2, 7, 8, 9, 16])) for _ in range(60))
    options = ListingOptions(disassemble_all=True)
    texts = [_listing(binary_image("random.bin", data, mode, 0x1000), formatter, options)
             for formatter in (decoder_formatter(mode, "att"), _one_at_a_time(mode, "att"))]
    assert texts[0] == texts[1]
    assert "\t...\n" in texts[0]


@pytest.fixture(scope="module")
def program() -> str:
    require_file(SYSTEM_BINARY)
    return SYSTEM_BINARY


@pytest.mark.oracle("objdump-2.40")
@pytest.mark.parametrize("args", [
    ["-d"], ["-D"], ["-d", "-M", "intel", "--no-show-raw-insn"], ["-d", "-j", ".text"],
    ["-d", "--start-address=0x3000", "--stop-address=0x3800"], ["-d", "--prefix-addresses"],
])
def test_listing_in_parts_equals_one_process_and_objdump(monkeypatch, capsys, program,
                                                         args) -> None:
    from x86vm.cli import main

    monkeypatch.setattr(listing, "PARALLEL_MIN_BYTES", 0)
    outputs = []
    for jobs in ("1", "3", "7"):
        monkeypatch.setenv("X86VM_DISASM_JOBS", jobs)
        assert main(["disasm", *args, program]) == 0
        outputs.append(capsys.readouterr().out)
    expected = subprocess.run(["objdump", *args, program], capture_output=True, text=True,
                              errors="surrogateescape", check=True).stdout
    assert outputs[0] == expected
    assert outputs[1] == expected
    assert outputs[2] == expected


def _numbers_walk(count: int, fail_in_child_at: int | None = None, name: str = ""):
    """A walk over pieces 0..count-1 (each its own offset) printing ``N name\n``."""
    parent = os.getpid()

    def walk(owner, write) -> None:
        for n in range(count):
            if owner.owns(n):
                if n == fail_in_child_at and os.getpid() != parent:
                    raise RuntimeError("child failure")
                write(f"{n}{name}\n")
    return walk


@pytest.mark.parametrize("jobs", [1, 2, 3, 5])
def test_chunks_claimed_by_processes_come_out_in_order(jobs) -> None:
    cuts = [0, 7, 9, 9, 20, 21, 30, 44, 46]     # (chunk 2 is empty, 7 has no piece)
    pieces: list[str] = []
    parallel.run_chunks(cuts, jobs, _numbers_walk(45), pieces.append)
    assert "".join(pieces) == "".join(f"{n}\n" for n in range(45))


@pytest.mark.parametrize("failing", [0, 8, 25, 44])
def test_a_failing_child_has_its_chunks_listed_by_the_parent(failing) -> None:
    pieces: list[str] = []
    parallel.run_chunks([0, 10, 20, 30, 46], 3, _numbers_walk(45, failing), pieces.append)
    assert "".join(pieces) == "".join(f"{n}\n" for n in range(45))


def test_names_that_are_not_utf8_survive_the_spool() -> None:
    pieces: list[str] = []
    name = b" sym\xff\xfe".decode("utf-8", "surrogateescape")
    parallel.run_chunks([0, 1, 2, 3], 2, _numbers_walk(3, name=name), pieces.append)
    assert "".join(pieces) == "".join(f"{n}{name}\n" for n in range(3))


def test_chunk_shares_are_large_first_and_add_up() -> None:
    for jobs in (2, 3, 8):
        shares = parallel.chunk_shares(jobs, 1 / 64)
        assert abs(sum(shares) - 1) < 1e-9
        assert shares[0] == pytest.approx(1 / (2 * jobs))
        assert shares[:-1] == sorted(shares[:-1], reverse=True)
        assert 1 / 128 <= shares[-1] < 2 / 64 and len(shares) <= parallel.MAX_CHUNKS


@pytest.mark.parametrize("vma", [0, 0xF80, 0x7FFFF000])
def test_runs_of_padding_list_as_one_instruction_at_a_time(vma) -> None:
    # int3 and nop runs are joined at once (sweep.PlainSweep.run): across 4096-address
    # blocks, from address 0 (narrower addresses), and next to other code
    rng = random.Random(vma)
    data = b"".join(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
                    + bytes([rng.choice([0xCC, 0x90])]) * rng.choice([2, 9, 300, 5000])
                    for _ in range(12))
    options = ListingOptions(disassemble_all=True)
    texts = [_listing(binary_image("pad.bin", data, 64, vma), formatter, options)
             for formatter in (decoder_formatter(64, "att"), _one_at_a_time(64, "att"))]
    assert texts[0] == texts[1]
    assert texts[0].count("\tint3\n") > 2000


def test_parts_are_cut_at_equal_work_with_padding_counted_little() -> None:
    # bytes of code cost 1, runs of >= PADDING_RUN cheap bytes PADDING_COST each
    c = parallel.PADDING_COST
    assert parallel.balanced_cuts([(1000, b"a" * 1000)], 2, b"\x00") == [0, 500, 1000]
    # 500 code + 500 int3 (cost 500c): the half falls in the code, at 250 + 250c
    assert parallel.balanced_cuts([(1000, b"a" * 500 + b"\xcc" * 500)], 2, b"\xcc") == \
        [0, int(250 + 250 * c), 1000]
    # the other way round: the int3 cost 500c < half, the cut in the code after it
    assert 0 < c < 1
    assert parallel.balanced_cuts([(1000, b"\xcc" * 500 + b"a" * 500)], 2, b"\xcc") == \
        [0, int(500 + 250 + 250 * c - 500 * c), 1000]
    # int3 (500c), code (500), a NOBITS section of zeros (300c): thirds
    third = (500 * c + 500 + 300 * c) / 3
    assert parallel.balanced_cuts([(1000, b"\xcc" * 500 + b"a" * 500), (300, None)], 3,
                                  b"\xcc\x00") == \
        [0, int(500 + third - 500 * c), int(500 + 2 * third - 500 * c), 1300]
    # a short run is code
    assert parallel.balanced_cuts([(1000, b"a" * 900 + b"\xcc" * 100)], 2, b"\xcc") == \
        [0, 500, 1000]
    # --start-address/--stop-address: only the listed bytes count (here 600..1000 of the
    # first section and 0..600 of the second, whose 500 zeros cost 500c)
    assert parallel.balanced_cuts([(1000, b"a" * 1000, 600, 1000)], 2, b"\x00") == \
        [0, 800, 1000]
    half = (400 + 100 + 500 * c) / 2
    assert parallel.balanced_cuts([(1000, b"a" * 1000, 600, 1000),
                                   (1000, b"a" * 100 + b"\x00" * 900, 0, 600)], 2, b"\x00") == \
        [0, int(600 + half), 2000]


@pytest.mark.parametrize("idle, expected", [(200, 2), (90, 2), (40, 2), (30, 1), (0, 1)])
def test_parts_go_only_to_cpus_that_were_idle(monkeypatch, idle, expected) -> None:
    # 2 CPUs, 200 ticks of them since the start: `idle` of those were idle (this process
    # kept one CPU busy, so 200 idle ticks would be an idle machine but for us)
    from x86vm.cli import disasm

    monkeypatch.delenv("X86VM_DISASM_JOBS", raising=False)
    monkeypatch.setattr(disasm.os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(disasm.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(disasm, "_STARTED", (1000, 5000))
    monkeypatch.setattr(disasm, "_cpu_times", lambda: (1000 + idle, 5200))
    assert disasm._jobs() == expected
    monkeypatch.setenv("X86VM_DISASM_JOBS", "3")
    assert disasm._jobs() == 3
