"""Two threads decoding and formatting different binaries at once get exactly what one gets.

The decoder keeps no per-decode state outside the call, and the formatters keep their caches
themselves (keyed by the decoded core), so the shared memo (cache.py) and the formatters'
memo may be filled by both threads in any interleaving.  A tiny switch interval makes the
threads interleave every few bytecodes.
"""

from __future__ import annotations

import os
import struct
import sys
import threading

import pytest

from x86vm.disasm import att, intel
from x86vm.isa import cache, decode_all

BINARIES = ("/usr/bin/python3.11", "/usr/lib/x86_64-linux-gnu/libc.so.6")
SLICE = 400_000     # bytes of each .text: the old module state broke on these


def text_section(path: str) -> tuple[bytes, int]:
    """The bytes and address of an ELF64 file's .text (ELF spec: section headers)."""
    with open(path, "rb") as f:
        data = f.read()
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i: int) -> tuple:
        return struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
    names_at = header(shstrndx)[4]
    for i in range(shnum):
        name, _type, _flags, addr, offset, size = header(i)
        end = data.index(b"\0", names_at + name)
        if data[names_at + name:end] == b".text":
            return data[offset:offset + size], addr
    raise LookupError(f"{path}: no .text")


def listing(code: bytes, address: int) -> list[tuple]:
    out = []
    for insn in decode_all(code, address=address, mode=64):
        out.append((insn.address, insn.length, insn.mnemonic, repr(insn.operands),
                    att.format_att(insn), intel.format_intel(insn)))
    return out


def forget_all() -> None:
    cache._forget()
    for syntax in (att._ATT, intel._INTEL):
        syntax.texts.clear()
        syntax.templates.clear()


def check_two_threads(size: int | None) -> None:
    paths = [p for p in BINARIES if os.path.exists(p)]
    if len(paths) < 2:
        pytest.skip("python3.11 and libc.so.6 are needed")
    inputs = []
    for path in paths:
        code, address = text_section(path)
        inputs.append((code[:size] if size else code, address))
    expected = []
    for code, address in inputs:
        forget_all()
        expected.append(listing(code, address))
    forget_all()
    got: list = [None, None]

    def work(i: int) -> None:
        got[i] = listing(*inputs[i])
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    for want, have in zip(expected, got, strict=True):
        assert have is not None
        wrong = [(a, b) for a, b in zip(want, have, strict=True) if a != b]
        assert not wrong, f"{len(wrong)} differ, e.g. {wrong[:3]}"
        assert len(want) == len(have)


def test_two_threads_decode_like_one() -> None:
    check_two_threads(SLICE)


@pytest.mark.slow
def test_two_threads_decode_whole_binaries_like_one() -> None:
    check_two_threads(None)
