"""``x86vm disasm -l`` and ``-S``: function names and ``file:line`` (and the source lines
themselves) from DWARF line programs (versions
2 to 5) and .debug_info (inlined calls, abstract origins, ranges), or from the symbol table
without DWARF, compared byte for byte with objdump 2.40 on programs gcc/g++ build here with
-g -O2 in several DWARF versions, as objects (sections laid out as BFD lays them), PIE and
non-PIE executables, -ffunction-sections, 32-bit, C++ with -C, without -g, and stripped."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from test_disasm_options import objdump, run_cli

pytestmark = pytest.mark.oracle("objdump-2.40")

C_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
static inline int square(int x) { return x * x; }
static int helper(int a) {
    int s = 0;
    for (int i = 0; i < a; i++)
        s += square(i) ^ a;
    return s;
}
__attribute__((noinline)) long walk(const char *p) {
    long n = 0;
    while (*p) { if (*p == 'x') n += 3; else n--; p++; }
    return n;
}
int table[16] = {1, 2, 3};
int main(int argc, char **argv) {
    printf("%d %ld\n", helper(argc) + square(argc), walk(argv[0]));
    return table[argc & 15];
}
"""
CXX_SOURCE = r"""
namespace ns {
template <class T> struct Box {
    T v;
    __attribute__((noinline)) T get() const { return v * 3 + 1; }
};
template <class T> T twice(T x) { return x + x; }
}
int use(ns::Box<long> &b, int k) { return (int) b.get() + ns::twice(k); }
int main(int c, char **) { ns::Box<long> b{c}; return use(b, c); }
"""
BUILDS = {
    "c5.o": ["-c", "-gdwarf-5"], "c4.o": ["-c", "-gdwarf-4"], "c3.o": ["-c", "-gdwarf-3"],
    "c2.o": ["-c", "-gdwarf-2"], "c5": ["-gdwarf-5"], "c4-nopie": ["-gdwarf-4", "-no-pie"],
    "c5-fs.o": ["-c", "-gdwarf-5", "-ffunction-sections"], "nog.o": ["-c"], "nog": [],
    "c32.o": ["-m32", "-c", "-gdwarf-5"], "c32": ["-m32", "-gdwarf-4"],
}


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> list[str]:
    if shutil.which("gcc") is None or shutil.which("g++") is None:
        pytest.skip("needs gcc and g++")
    work = tmp_path_factory.mktemp("disasm_lines")
    (work / "prog.c").write_text(C_SOURCE)
    (work / "prog.cc").write_text(CXX_SOURCE)
    paths = []
    for name, flags in BUILDS.items():
        done = subprocess.run(["gcc", "-O2", *(["-g"] if "nog" not in name else []), *flags,
                               str(work / "prog.c"), "-o", str(work / name)],
                              capture_output=True)
        if done.returncode == 0:
            paths.append(str(work / name))
        elif "32" not in name:                     # a missing 32-bit multilib is no failure
            pytest.fail(done.stderr.decode())
    for name, flags in {"cxx.o": ["-c"], "cxx": []}.items():
        subprocess.run(["g++", "-O2", "-g", *flags, str(work / "prog.cc"), "-o",
                        str(work / name)], check=True)
        paths.append(str(work / name))
    stripped = work / "stripped"
    shutil.copy(work / "c5", stripped)
    subprocess.run(["strip", str(stripped)], check=True)
    return [*paths, str(stripped)]


@pytest.mark.parametrize("options", [["-dl"], ["-dlw", "-Mintel"], ["-dlr"], ["-dlC"],
                                     ["--line-numbers", "-d", "--no-show-raw-insn"],
                                     ["-S"], ["-lS"], ["-dSw", "-Mintel"],
                                     ["-dl", "--prefix=/elsewhere/", "--prefix-strip=2"],
                                     ["-lS", "--prefix=/nowhere", "--prefix-strip=1"]],
                         ids=lambda options: " ".join(options))
def test_line_numbers_match_objdump(capsys, programs, options):
    args = [*options, *programs]
    theirs = objdump(args)
    code, out, err = run_cli(args, capsys)
    assert (code, err) == (theirs.returncode, "")
    diff = [(a, b) for a, b in zip(theirs.stdout.split("\n"), out.split("\n"), strict=False)
            if a != b]
    assert out == theirs.stdout, diff[:5]
    if "--prefix=/elsewhere/" in options:                   # relocated names
        assert "\n/elsewhere/" in out and "/prog.c:" in out
        return
    if "--prefix=/nowhere" in options:                      # no source where they point
        assert "/nowhere/" in out and "x * x" not in out
        return
    if options[0] in ("-S", "-dSw"):                        # source lines, no names
        assert "square():" not in out and "s += square(i) ^ a;" in out
        return
    assert "square():" in out and "helper():" in out        # inlined calls by name
    if "S" in options[0]:
        assert "static inline int square(int x) { return x * x; }" in out
    if "-dlC" in options:
        assert "ns::Box<long>::get() const:" in out         # demangled: no "()" added
    assert "/prog.c:" in out


def test_library_listing_carries_source_lines(programs):
    import x86vm.disasm

    path = next(p for p in programs if p.endswith("/c5"))
    lines = [line for line in x86vm.disasm.listing(path, line_numbers=True)
             if line.source is not None]
    assert lines and all(line.source.file.endswith("prog.c") for line in lines)
    assert {line.source.function for line in lines} >= {"main", "walk", "square"}


@pytest.mark.parametrize("name", ["libutil.so.1", "libdl.so.2"])
def test_separate_debug_file_by_build_id(capsys, name):
    """A glibc library whose DWARF and full symbol table live in /usr/lib/debug/.build-id
    (libc6-dbg): objdump follows the build-id note, and so does x86vm."""
    import glob

    path = f"/usr/lib/x86_64-linux-gnu/{name}"
    if not glob.glob("/usr/lib/debug/.build-id/*/*.debug") or not \
            __import__("os").path.exists(path):
        pytest.skip("needs libc6-dbg's separate debug files")
    theirs = objdump(["-dl", path])
    code, out, err = run_cli(["-dl", path], capsys)
    assert (code, err, out) == (theirs.returncode, "", theirs.stdout)
    assert "crti.S:" in out and "deregister_tm_clones():" in out
