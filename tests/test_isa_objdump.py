"""Differential tests of the decoder and both formatters against objdump 2.40 (the oracle).

Default runs use samples; `-m slow` runs the full corpora the issue names.  Expected text
always comes from objdump on this machine (tests/objdump_oracle.py, cached under $TMPDIR).
"""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isa_compare import compare, load_code
from objdump_oracle import objdump_strings
from oracle.compare import code_mismatches
from oracle.known import assert_known
from support.oracles import require_file
from x86vm.disasm.att import format_att
from x86vm.disasm.intel import format_intel
from x86vm.isa import decode, decode_all

needs_objdump = pytest.mark.oracle("objdump-2.40")
PYTHON = "/usr/bin/python3.11"
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"


def _code(path: str) -> tuple[bytes, int]:
    require_file(path)
    return load_code(path)


def _window(data: bytes, start: int, size: int) -> bytes:
    return data[start:start + size]


@needs_objdump
@pytest.mark.parametrize("intel", [False, True], ids=["att", "intel"])
def test_python_text_sample_matches_objdump(intel: bool) -> None:
    data, address = _code(PYTHON)
    for start in (0, len(data) // 2, len(data) - 40000):
        chunk = _window(data, start, 40000)
        n, length_bad, text_bad = compare(chunk, address + start, 64, intel, quiet=True)
        assert n > 8000 and (length_bad, text_bad) == (0, 0)


@needs_objdump
@pytest.mark.parametrize("intel", [False, True], ids=["att", "intel"])
def test_libc_vector_code_matches_objdump(intel: bool) -> None:
    """A libc window with AVX2 and AVX-512 (EVEX) string functions."""
    data, address = _code(LIBC)
    start = data.find(bytes.fromhex("62 f1 fe 48 6f"))     # vmovdqu64 (%rcx),%zmm0
    assert start > 0
    chunk = _window(data, max(0, start - 30000), 60000)
    n, length_bad, text_bad = compare(chunk, address + max(0, start - 30000), 64, intel,
                                      quiet=True)
    assert n > 10000 and (length_bad, text_bad) == (0, 0)


def _random_strings(mode: int, count: int, seed: int) -> list[bytes]:
    rnd = random.Random(seed * 1000 + mode)
    return [rnd.randbytes(15) for _ in range(count)]


SYMBOL = re.compile(r" <[^>]*>")


def _string_mismatches(mode: int, strings: list[bytes], syntax: str
                       ) -> list[tuple[str, str, str]]:
    """Each string's first instruction, length and text, against objdump's. The strings are
    functions of an object file there (at 15 * i): objdump names branch targets ``ADDR
    <fN+0xK>``; the symbol is dropped and the address compared."""
    intel = syntax == "intel"
    expected = objdump_strings(strings, mode, intel)
    fmt = format_intel if intel else format_att
    bad = []
    for i, (s, (length, text)) in enumerate(zip(strings, expected, strict=True)):
        insn = decode(s, 0, i * 15, mode)
        got = fmt(insn, lambda address: f"{address:x}")
        want = SYMBOL.sub("", text)
        if (insn.length, got) != (length, want):
            bad.append((s.hex(), f"{s[:length].hex()} {want!r}",
                        f"{bytes(insn.bytes).hex()} {got!r}"))
    return bad


@needs_objdump
@pytest.mark.parametrize("mode", [64, 32, 16])
@pytest.mark.parametrize("syntax", ["att", "intel"])
def test_random_15_byte_strings_match_objdump(mode: int, syntax: str) -> None:
    """Length and text; the mismatches are exactly those listed (suite ``random-strings``)."""
    strings = _random_strings(mode, 5000, seed=1)
    assert_known("random-strings", mode, syntax, _string_mismatches(mode, strings, syntax))


@needs_objdump
@pytest.mark.slow
@pytest.mark.parametrize("mode", [64, 32, 16])
@pytest.mark.parametrize("syntax", ["att", "intel"])
def test_100k_random_strings_match_objdump(mode: int, syntax: str) -> None:
    strings = _random_strings(mode, 100_000, seed=2)
    assert_known("random-strings-100k", mode, syntax,
                 _string_mismatches(mode, strings, syntax))


@needs_objdump
@pytest.mark.parametrize("mode", [64, 32, 16])
@pytest.mark.parametrize("syntax", ["att", "intel"])
def test_random_stream_text_matches_objdump(mode: int, syntax: str) -> None:
    """Random bytes decoded as a stream: lengths and text match objdump, but for the cases
    listed (suite ``random-stream``)."""
    data = random.Random(mode).randbytes(12000)
    n, wrong = code_mismatches(data, 0x1000, mode, syntax)
    assert n > 4000
    assert_known("random-stream", mode, syntax, wrong)


@needs_objdump
@pytest.mark.slow
@pytest.mark.parametrize("path", [PYTHON, LIBC])
@pytest.mark.parametrize("intel", [False, True], ids=["att", "intel"])
def test_whole_text_section_matches_objdump(path: str, intel: bool) -> None:
    data, address = _code(path)
    n, length_bad, text_bad = compare(data, address, 64, intel, quiet=True)
    assert (length_bad, text_bad) == (0, 0), (n, length_bad, text_bad)


@settings(max_examples=3000, deadline=None)
@given(st.binary(min_size=1, max_size=20), st.sampled_from([16, 32, 64]),
       st.integers(0, 2**32))
def test_decoding_never_raises(data: bytes, mode: int, address: int) -> None:
    insn = decode(data, 0, address, mode)
    assert 1 <= insn.length <= min(15, len(data))
    assert insn.bytes == data[:insn.length]
    assert isinstance(format_att(insn), str) and isinstance(format_intel(insn), str)
    total = sum(i.length for i in decode_all(data, address, mode))
    assert total == len(data)


def test_buffer_types_and_instruction_attributes() -> None:
    """bytes, bytearray and memoryview decode alike; attributes the CPU will need."""
    code = bytes.fromhex("48 8b 05 10 00 00 00 e8 fb ff ff ff c3")
    for buf in (code, bytearray(code), memoryview(code)):
        insns = list(decode_all(buf, 0x1000))
        assert [i.length for i in insns] == [7, 5, 1]
        load, call, ret = insns
        assert load.reads_memory and not load.writes_memory
        assert load.memory_operand.target == 0x1017 and load.target is None
        assert call.branch_kind == "call" and call.target == 0x1007      # e8 -5: itself
        assert ret.branch_kind == "ret" and not ret.privileged
    again = decode(code, 7, 0x2007)          # the same bytes elsewhere: targets move along
    assert again.target == 0x2007 and again.operands[0].target == 0x2007
    assert decode(bytes.fromhex("0f 01 f8")).privileged        # swapgs
