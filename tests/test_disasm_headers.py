"""objdump's header dumps in ``x86vm disasm``: ``-f``, ``-h``, ``-t``, ``-T``, alone, together
and before a listing, compared byte for byte (and by exit status) with objdump 2.40 run live
on gcc/g++ builds (objects with COMDAT groups, TLS and common symbols, PIE, non-PIE, shared,
32-bit) and on system binaries and libraries."""

from __future__ import annotations

import subprocess

import pytest

from support.oracles import require_file
from test_disasm_options import cxx_inputs, inputs, objdump, run_cli  # noqa: F401 (fixtures)

pytestmark = pytest.mark.oracle("objdump-2.40")

SYSTEM_FILES = ["/usr/bin/true", "/usr/lib/x86_64-linux-gnu/libc.so.6",
                "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"]
EXTRA_SOURCE = "int cv; int big[64] __attribute__((aligned(32))); __thread int tl = 3;\n" \
               "int f(void) { return cv + tl + big[3]; }\n"


@pytest.fixture(scope="module")
def extra_inputs(tmp_path_factory) -> list[str]:
    """A -fcommon object (common symbols: the size column is their alignment) and TLS."""
    work = tmp_path_factory.mktemp("disasm_headers")
    source = work / "common.c"
    source.write_text(EXTRA_SOURCE)
    out = work / "common.o"
    subprocess.run(["gcc", "-O2", "-fcommon", "-c", str(source), "-o", str(out)], check=True)
    return [str(out)]


def _same_as_objdump(args: list[str], capsys) -> str:
    theirs = objdump(args)
    code, out, err = run_cli(args, capsys)
    assert code == theirs.returncode, err
    diff = [(a, b) for a, b in zip(theirs.stdout.split("\n"), out.split("\n"), strict=False)
            if a != b]
    assert out == theirs.stdout, diff[:5]
    return out


@pytest.mark.parametrize("options", [
    ["-f"], ["-h"], ["-hw"], ["-t"], ["-T"], ["-fhtT"], ["-ft"], ["-tC"],
    ["-TC"], ["-h", "-j", ".text"], ["-t", "-j", ".text"], ["-dh"], ["-dfht"],
    ["-dt", "-Mintel", "--no-show-raw-insn"], ["--file-headers", "--section-headers"],
    ["--syms", "--dynamic-syms", "-w"],
], ids=lambda options: " ".join(options))
def test_header_dumps_match_objdump(capsys, inputs, cxx_inputs, extra_inputs,  # noqa: F811
                                    options):
    files = [*inputs, *cxx_inputs, *extra_inputs]
    out = _same_as_objdump([*options, *files], capsys)
    assert out.count("file format") == len(files)
    if ("h" in options[0] or "--section-headers" in options) and "-j" not in options:
        assert "CONTENTS, READONLY, GROUP, LINK_ONCE_DISCARD" in out     # g++ COMDAT groups
        assert "LOAD, DATA, THREAD_LOCAL" in out                        # .tdata
    if options[0] in ("-t", "-fhtT") and "-j" not in options:
        assert "*COM*\t0000000000000020 big" in out                     # alignment column


@pytest.mark.parametrize("path", SYSTEM_FILES)
def test_header_dumps_of_system_files_match_objdump(capsys, path):
    require_file(path)
    out = _same_as_objdump(["-fhT", path], capsys)
    assert "DYNAMIC SYMBOL TABLE:" in out and "D_PAGED" in out
    if "libc" in path:
        assert " (GLIBC_PRIVATE) " in out and "  GLIBC_2.2.5 " in out    # version columns


def test_dynamic_symbols_of_an_object_is_objdumps_error(capsys, inputs):  # noqa: F811
    """-T of a relocatable object: "no symbols", "not a dynamic object", status 1."""
    obj = next(p for p in inputs if p.endswith("prog.o"))
    theirs = objdump(["-T", obj])
    code, out, err = run_cli(["-T", obj], capsys)
    assert (code, out) == (theirs.returncode, theirs.stdout) == (1, theirs.stdout)
    assert "no symbols" in out
    assert err.strip().endswith(theirs.stderr.strip().removeprefix("objdump: "))
