"""DWARF read as BFD 2.40 reads it where the bulk run found x86vm reading it otherwise.

Address ranges of functions in .debug_info (dwarf2.c
arange_add): an empty range is dropped, so the first range's start -- the address BFD
compares with the symbol of the function -- is the first non-empty one, and ranges that
meet are merged before the smallest range around an address is chosen.  The DWARF 5 below
is written by hand (gas makes the line table from its .loc lines): an inlined ``inner``
whose range list starts with an empty range at the function's entry (libasan's
``char_is_one_of``), and a ``second`` that only wins against a split range once the halves
are merged.  Objects and an executable are built here; objdump -dl is the oracle.

Inlined calls whose abstract origin is a DW_FORM_ref_addr into another unit (gcc -flto puts
the abstract instances in the early-debug unit: libsframe.so.0): named from that unit.

A compressed .debug_info over ten times the size of its file (libmvec.so.1's separate debug
file): BFD refuses it with one "DWARF error" line and lists without line numbers."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from support.disasm_cli import objdump, run_cli
from support.oracles import require_file

pytestmark = pytest.mark.oracle("objdump-2.40")

ASSEMBLY = r"""
	.file	"repro.cc"
	.text
.Ltext0:
	.file 0 "/tmp/repro" "repro.cc"
	.globl	outer
	.type	outer, @function
outer:
	.loc 0 10
	nop
	nop
	.loc 0 3
	nop
	.loc 0 4
	nop
	nop
	nop
	nop
	nop
	.loc 0 11
	nop
	nop
	ret
.Lend:
	.size	outer, .-outer
.Letext0:

	.section	.debug_abbrev,"",@progbits
.Labbrev0:
	.uleb128 1
	.uleb128 0x11
	.byte 1
	.uleb128 0x03
	.uleb128 0x08
	.uleb128 0x13
	.uleb128 0x0b
	.uleb128 0x11
	.uleb128 0x01
	.uleb128 0x12
	.uleb128 0x07
	.uleb128 0x10
	.uleb128 0x17
	.uleb128 0
	.uleb128 0
	.uleb128 2
	.uleb128 0x2e
	.byte 0
	.uleb128 0x03
	.uleb128 0x08
	.uleb128 0x20
	.uleb128 0x0b
	.uleb128 0
	.uleb128 0
	.uleb128 3
	.uleb128 0x2e
	.byte 1
	.uleb128 0x03
	.uleb128 0x08
	.uleb128 0x11
	.uleb128 0x01
	.uleb128 0x12
	.uleb128 0x07
	.uleb128 0
	.uleb128 0
	.uleb128 4
	.uleb128 0x1d
	.byte 0
	.uleb128 0x31
	.uleb128 0x13
	.uleb128 0x55
	.uleb128 0x17
	.uleb128 0
	.uleb128 0
	.uleb128 0

	.section	.debug_info,"",@progbits
.Linfo0:
	.long	.Linfo_end - .Linfo_start
.Linfo_start:
	.value	5
	.byte	1
	.byte	8
	.long	.Labbrev0
	.uleb128 1
	.string	"repro.cc"
	.byte	0x4
	.quad	.Ltext0
	.quad	.Letext0 - .Ltext0
	.long	.Ldebug_line0
.Linner:
	.uleb128 2
	.string	"inner"
	.byte	3
.Lsecond:
	.uleb128 2
	.string	"second"
	.byte	3
	.uleb128 3
	.string	"outer"
	.quad	outer
	.quad	.Lend - outer
	.uleb128 4
	.long	.Linner - .Linfo0
	.long	.Lrl_inner - .Lrnglists0
	.uleb128 4
	.long	.Lsecond - .Linfo0
	.long	.Lrl_second - .Lrnglists0
	.uleb128 4
	.long	.Linner - .Linfo0
	.long	.Lrl_split - .Lrnglists0
	.byte	0
	.byte	0
.Linfo_end:

	.section	.debug_rnglists,"",@progbits
.Lrnglists0:
	.long	.Lrl_end - .Lrl_start
.Lrl_start:
	.value	5
	.byte	8
	.byte	0
	.long	0
.Lrl_inner:
	.byte	5
	.quad	outer
	.byte	4
	.uleb128 0
	.uleb128 0
	.byte	4
	.uleb128 2
	.uleb128 4
	.byte	0
.Lrl_second:
	.byte	5
	.quad	outer
	.byte	4
	.uleb128 4
	.uleb128 9
	.byte	0
.Lrl_split:
	.byte	5
	.quad	outer
	.byte	4
	.uleb128 4
	.uleb128 6
	.byte	4
	.uleb128 6
	.uleb128 10
	.byte	0
.Lrl_end:
	.section	.debug_line,"",@progbits
.Ldebug_line0:
	.section	.note.GNU-stack,"",@progbits
"""


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> list[str]:
    if shutil.which("gcc") is None or shutil.which("objdump") is None:
        pytest.skip("needs gcc and objdump")
    work = tmp_path_factory.mktemp("dwarf_ranges")
    (work / "ranges.s").write_text(ASSEMBLY)
    subprocess.run(["gcc", "-c", str(work / "ranges.s"), "-o", str(work / "ranges.o")],
                   check=True)
    subprocess.run(["gcc", "-nostdlib", "-static", "-Wl,-e,outer", str(work / "ranges.o"),
                    "-o", str(work / "ranges")], check=True)
    return [str(work / "ranges.o"), str(work / "ranges")]


@pytest.mark.parametrize("options", [["-dl"], ["-dlC", "-M", "intel"]],
                         ids=lambda options: " ".join(options))
def test_inlined_ranges_match_objdump(capsys, builds, options):
    args = [*options, *builds]
    theirs = objdump(args)
    code, out, err = run_cli(args, capsys)
    assert (code, err) == (0, "")
    # the constructs are there: inner named once its empty first range is dropped,
    # second chosen over the merged halves of the split range
    assert "\ninner():\n" in out and "\nsecond():\n" in out
    assert out == theirs.stdout


def test_libasan_inlined_call_matches_objdump(capsys):
    """Where the bulk run found it: char_is_one_of inlined into
    maybe_parse_length_modifier, its range list starting with an empty range."""
    path = "/usr/lib/x86_64-linux-gnu/libasan.so.8"
    require_file(path)
    args = ["-dl", "--start-address=0x4a500", "--stop-address=0x4a530", path]
    theirs = objdump(args)
    code, out, err = run_cli(args, capsys)
    assert (code, err) == (0, "")
    assert "char_is_one_of():" in theirs.stdout
    assert out == theirs.stdout


def test_compressed_debug_info_too_big_is_refused_as_objdump_does(capsys, tmp_path):
    """An executable given a 2 MB .debug_info of zeros, compressed to a few KB."""
    if shutil.which("gcc") is None or shutil.which("objcopy") is None:
        pytest.skip("needs gcc and objcopy")
    (tmp_path / "small.c").write_text("int f(int x) { return x * 3; }\n"
                                      "int main(int c, char **v) { return f(c); }\n")
    (tmp_path / "zeros").write_bytes(bytes(2_000_000))
    subprocess.run(["gcc", "-O2", str(tmp_path / "small.c"), "-o", str(tmp_path / "plain")],
                   check=True)
    subprocess.run(["objcopy", "--add-section", f".debug_info={tmp_path / 'zeros'}",
                    str(tmp_path / "plain"), str(tmp_path / "added")], check=True)
    subprocess.run(["objcopy", "--compress-debug-sections=zlib", str(tmp_path / "added"),
                    str(tmp_path / "big")], check=True)
    args = ["-dl", str(tmp_path / "big")]
    theirs = objdump(args)
    code, out, err = run_cli(args, capsys)
    assert theirs.stderr == "objdump: DWARF error: section .debug_info is too big\n"
    assert (code, out) == (theirs.returncode, theirs.stdout)
    assert err == theirs.stderr.replace("objdump:", "x86vm:")


def test_libmvec_separate_debug_info_too_big_matches_objdump(capsys):
    path = "/usr/lib/x86_64-linux-gnu/libmvec.so.1"
    require_file(path)
    args = ["-dl", "--stop-address=0x6100", path]
    theirs = objdump(args)
    code, out, err = run_cli(args, capsys)
    assert (code, out) == (theirs.returncode, theirs.stdout)
    assert err == theirs.stderr.replace("objdump:", "x86vm:")


LTO_SOURCES = {
    "a.c": r"""
static inline int check(const unsigned char *p) { return (p[0] >> 5) != 3 && !(p[0] & 12); }
static inline int size_of(const unsigned char *p) { return (p[0] >> 5) & 3; }
extern int other(int);
__attribute__((noinline)) int offset_of(const unsigned char *p) {
  if (!p || !check(p)) return -1;
  return size_of(p) * 4 + other(p[1]);
}
int main(int c, char **v) { return offset_of((const unsigned char *)v[0]) + c; }
""",
    "b.c": r"""
static inline int twice(int x) { return x + x; }
__attribute__((noinline)) int other(int x) { return twice(x) ^ 7; }
""",
}


@pytest.mark.parametrize("flags", [["-gdwarf-5"], ["-gdwarf-4", "-fPIC", "-shared"]],
                         ids=lambda flags: " ".join(flags))
def test_lto_abstract_origins_in_other_units_match_objdump(capsys, tmp_path, flags):
    if shutil.which("gcc") is None or shutil.which("objdump") is None:
        pytest.skip("needs gcc and objdump")
    for name, text in LTO_SOURCES.items():
        (tmp_path / name).write_text(text)
    built = subprocess.run(["gcc", "-O2", "-flto", *flags, str(tmp_path / "a.c"),
                            str(tmp_path / "b.c"), "-o", str(tmp_path / "lto")],
                           capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip(f"gcc -flto failed: {built.stderr[:200]}")
    args = ["-dl", str(tmp_path / "lto")]
    theirs = objdump(args)
    code, out, err = run_cli(args, capsys)
    assert (code, err) == (0, "")
    assert "\ncheck():\n" in out or "\ntwice():\n" in out    # inlined, named across units
    assert out == theirs.stdout


def test_libsframe_lto_listing_matches_objdump(capsys):
    path = "/usr/lib/x86_64-linux-gnu/libsframe.so.0"
    require_file(path)
    args = ["-dl", "--start-address=0x22c0", "--stop-address=0x2340", path]
    theirs = objdump(args)
    code, out, err = run_cli(args, capsys)
    assert (code, err) == (0, "")
    assert out == theirs.stdout
