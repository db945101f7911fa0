"""objdump 2.40's everyday options in ``x86vm disasm``: each listing compared byte for byte
with objdump run live on the same command line, on C programs built here with gcc -O2
(object, PIE, non-PIE, 32-bit object) and a system binary; bad command lines against
objdump's own error wording."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from support.oracles import require_file
from x86vm.cli import main

pytestmark = pytest.mark.oracle("objdump-2.40")

SOURCE = r"""
#include <stdio.h>
#include <string.h>
int counter;
static char buffer[4096];
struct pair { long a, b; };
__attribute__((noinline)) int scale(int x) { return x * 3 + counter; }
__attribute__((noinline)) long sum(const struct pair *p, int n) {
    long s = 0;
    for (int i = 0; i < n; i++) s += p[i].a * p[i].b;
    return s;
}
__attribute__((aligned(64))) const char table[48] = "padded table of bytes";
int main(int argc, char **argv) {
    struct pair p[4] = {{1, 2}, {3, 4}, {5, 6}, {argc, 8}};
    strncpy(buffer, argv[0], sizeof buffer - 1);
    printf("%d %ld %s %zu\n", scale(argc), sum(p, 4), table, strlen(buffer));
    return buffer[1];
}
"""
SYSTEM_BINARY = "/usr/bin/true"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[str]:
    """gcc -O2 builds of SOURCE (object, PIE, non-PIE, and a 32-bit object if gcc can)."""
    if shutil.which("gcc") is None or shutil.which("objdump") is None:
        pytest.skip("needs gcc and objdump")
    require_file(SYSTEM_BINARY)
    work = tmp_path_factory.mktemp("disasm_options")
    source = work / "prog.c"
    source.write_text(SOURCE)
    builds = {"prog.o": ["-c"], "prog-pie": ["-fPIE", "-pie"], "prog-nopie": ["-no-pie"],
              "prog-fs.o": ["-c", "-ffunction-sections"], "prog.so": ["-fPIC", "-shared"],
              "prog32.o": ["-m32", "-c"], "prog32": ["-m32"]}
    paths = []
    for name, flags in builds.items():
        proc = subprocess.run(["gcc", "-O2", *flags, str(source), "-o", str(work / name)],
                              capture_output=True)
        if proc.returncode == 0:
            paths.append(str(work / name))
        elif not name.startswith("prog32"):  # a missing 32-bit multilib is not a failure
            pytest.fail(proc.stderr.decode())
    return [*paths, SYSTEM_BINARY]


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(["disasm", *args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def objdump(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(["objdump", *args], capture_output=True, text=True,
                          errors="surrogateescape", timeout=120)


@pytest.mark.parametrize("options", [
    ["-dw"],
    ["-Mintel", "-d"],
    ["-dMintel"],
    ["-d", "--no-show-raw-insn"],
    ["-d", "--show-raw-insn"],
    ["-d", "--prefix-addresses"],
    ["-d", "--prefix-addresses", "--show-raw-insn"],
    ["-dw", "--prefix-addresses", "--show-raw-insn", "--insn-width=3"],
    ["-d", "--no-addresses"],
    ["-d", "--no-addresses", "--no-show-raw-insn", "-M", "intel"],
    ["--prefix-addresses", "--no-addresses", "-d"],
    ["-dz"],
    ["-Dz", "--no-addresses"],
    ["-D", "--prefix-addresses"],
    ["-d", "--insn-width=3"],
    ["-dw", "--insn-width=3"],
    ["-d", "--insn-width=16", "-w"],
    ["--disassemble=scale", "--prefix-add"],
    ["--disas=main"],  # ambiguous: an error, objdump's wording
    ["--disassemble=main", "--no-show"],
    ["-d", "-j", ".text", "--", "FILES"],
    ["-dr"],
    ["-dwr"],
    ["-Dr"],
    ["-Dr", "--no-addresses", "-z"],
    ["-dr", "--prefix-addresses"],
    ["-dr", "-Mintel", "--no-show-raw-insn", "--insn-width=16"],
], ids=lambda options: " ".join(options))
def test_listing_matches_objdump(capsys, inputs, options):
    """Several files in one command: objdump's per-file headers, in order."""
    if "FILES" in options:
        args = [*options[:-1], *inputs]
    else:
        args = [*options, *inputs]
    theirs = objdump(args)
    code, out, err = run_cli(args, capsys)
    assert code == theirs.returncode
    if theirs.returncode == 0:
        assert err == ""
        assert out.count("file format") == len(inputs)
        diff = [(a, b) for a, b in zip(theirs.stdout.split("\n"), out.split("\n"), strict=False)
                if a != b]
        assert out == theirs.stdout, diff[:5]
        if options[0].startswith(("-dr", "-Dr", "-dwr")):
            assert "R_X86_64_PLT32" in out and "R_386_PC32" in out.replace("R_386_PLT32", "")
    else:
        assert out == ""
        assert err == "x86vm: error: " + theirs.stderr.splitlines()[0].removeprefix("objdump: ") \
            + "\n"


@pytest.mark.parametrize("options", [
    ["-dq"], ["-CdlSqw"], ["-dK"], ["--bogus"], ["--bogus=1"], ["--dis"], ["--dis=foo"],
    ["--wide=3"], ["-d", "--insn-width"], ["-dj"], ["-d", "-M"], ["--s"], ["--n"],
    ["--prefix-addresses=1"], ["--no-show-raw-insn=yes"],
], ids=lambda options: " ".join(options))
def test_bad_command_line_has_objdumps_wording(capsys, options):
    """getopt's message, as one ``x86vm: error:`` line, objdump's status 1."""
    theirs = objdump(options)  # without a file: the option error comes first
    assert theirs.returncode == 1
    code, out, err = run_cli(options, capsys)
    assert (code, out) == (1, "")
    assert err == "x86vm: error: " + theirs.stderr.splitlines()[0].removeprefix("objdump: ") \
        + "\n"


def test_options_after_files_and_abbreviations_list_as_objdump(capsys, inputs):
    """getopt permutes: options may follow the files; a unique prefix is the option."""
    args = [inputs[0], "--no-sh", "-d", inputs[1], "--prefix-a", "--insn-w", "5"]
    theirs = objdump(args)
    code, out, err = run_cli(args, capsys)
    assert (code, err) == (theirs.returncode, "") == (0, "")
    assert out == theirs.stdout


def test_known_but_unsupported_option_is_one_line(capsys, inputs):
    code, out, err = run_cli(["-dl", inputs[0]], capsys)
    assert (code, out) == (1, "")
    assert err == "x86vm: error: option -l (--line-numbers) is not supported by x86vm disasm\n"


def test_a_missing_file_among_several_is_reported_and_the_rest_listed(capsys, inputs):
    args = ["-d", inputs[0], "/nonexistent/file", inputs[1]]
    theirs = objdump(args)
    code, out, err = run_cli(args, capsys)
    assert code == theirs.returncode == 1
    assert out == theirs.stdout
    assert err.count("\n") == 1 and "/nonexistent/file" in err


DYNAMIC = ["prog-pie", "prog-nopie", "prog.so", "prog32", "true"]


@pytest.mark.parametrize("options", [
    ["-dR"], ["-DR"], ["-DwR"], ["-DRw", "--no-addresses"], ["-DR", "--prefix-addresses"],
    ["-DRr", "-Mintel", "--no-show-raw-insn"],
], ids=lambda options: " ".join(options))
def test_dynamic_relocations_match_objdump(capsys, inputs, options):
    """-R on executables and shared objects (GOT slots of PLT stubs print as *unknown*,
    as objdump prints them), and on a system library."""
    files = [p for p in inputs if p.rsplit("/", 1)[-1] in DYNAMIC]
    files.append("/usr/lib/x86_64-linux-gnu/libz.so.1")
    require_file(files[-1])
    args = [*options, *files]
    theirs = objdump(args)
    code, out, err = run_cli(args, capsys)
    assert (code, err) == (theirs.returncode, "") == (0, "")
    assert "R_X86_64_GLOB_DAT" in out or "-D" not in args[0]
    assert out == theirs.stdout


def test_dynamic_relocations_of_an_object_stop_as_objdump_does(capsys, inputs):
    """objdump -R on a file without .dynsym: its header, one error, no further files."""
    args = ["-dR", inputs[1], inputs[0], inputs[2]]
    theirs = objdump(args)
    code, out, err = run_cli(args, capsys)
    assert code == theirs.returncode == 1
    assert out == theirs.stdout
    assert err == f"x86vm: error: {inputs[0]}: not a dynamic object\n"
