"""objdump 2.40's everyday options in ``x86vm disasm``: each listing compared byte for byte
with objdump run live on the same command line, on C programs built here with gcc -O2
(object, PIE, non-PIE, 32-bit object) and a system binary; bad command lines against
objdump's own error wording."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from support.disasm_cli import objdump, run_cli
from support.oracles import require_file

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
    code, out, err = run_cli(["-dx", inputs[0]], capsys)
    assert (code, out) == (1, "")
    assert err == "x86vm: error: option -x (--all-headers) is not supported by x86vm disasm\n"


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
    # BFD's two lines ("not a dynamic object", "invalid operation"), as objdump prints them
    assert err.replace("x86vm: error: ", "x86vm: ") == theirs.stderr.replace(
        "objdump: ", "x86vm: ")


# -- -C: C++ names -----------------------------------------------------------------------------

CXX_SOURCE = r"""#include <vector>
#include <map>
#include <string>
#include <functional>
#include <memory>
#include <iostream>
#include <algorithm>
namespace ns { namespace inner {
template <typename T, int N> struct Box { T v[N]; T get(int i) const { return v[i]; } Box&
    operator+=(const Box& o){ for(int i=0;i<N;i++) v[i]+=o.v[i]; return *this;} };
struct Widget { virtual ~Widget(); virtual int f(int) = 0; bool operator<(const Widget&) const;
    operator int() const; };
Widget::~Widget() {}
bool Widget::operator<(const Widget& o) const { return this < &o; }
Widget::operator int() const { return 3; }
}}
template <typename A, typename B> A convert(B b, A (*fn)(B)) { return fn(b); }
static int twice(int x) { return 2*x; }
int run(std::map<std::string, std::vector<int>>& m, const char* key, int (&arr)[3], void
    (*cb)(int, double)) {
  auto lam = [&](int k) { return m[key].size() + k; };
  std::function<int(int)> f = lam;
  std::vector<std::unique_ptr<ns::inner::Box<long, 4>>> boxes;
  boxes.push_back(std::make_unique<ns::inner::Box<long,4>>());
  std::sort(m[key].begin(), m[key].end(), [](int a, int b){ return a > b; });
  cb(arr[0], 1.5);
  std::cout << key << f(2) << convert<int, int>(arr[1], twice) << std::endl;
  ns::inner::Box<long,4> b{}; *boxes[0] += b;
  return boxes[0]->get(1) + (int)boxes.size();
}
struct D : ns::inner::Widget { int f(int x) override { return x; } };
int use(ns::inner::Widget* w) { D d; return d.f(1) + w->f(2) + (int)*w + (*w < d); }
template <typename... Ts> int count(Ts... ts) { return sizeof...(ts); }
int packs() { return count(1, 2.0, 'c', "s") + count<>(); }
int main(int c, char** v){ std::map<std::string, std::vector<int>> m; int a[3]={1,2,3}; return
    run(m, v[0], a, nullptr) + packs(); }
"""


@pytest.fixture(scope="module")
def cxx_inputs(tmp_path_factory) -> list[str]:
    """g++ -O2 builds of CXX_SOURCE: templates, namespaces, operators, lambdas, std:: types."""
    if shutil.which("g++") is None or shutil.which("objdump") is None:
        pytest.skip("needs g++ and objdump")
    work = tmp_path_factory.mktemp("disasm_demangle")
    source = work / "prog.cc"
    source.write_text(CXX_SOURCE)
    paths = []
    for name, flags in {"prog.o": ["-c"], "prog-pie": ["-fPIE", "-pie"],
                        "prog-nopie": ["-no-pie"], "prog.so": ["-fPIC", "-shared"]}.items():
        proc = subprocess.run(["g++", "-O2", *flags, str(source), "-o", str(work / name)],
                              capture_output=True)
        if proc.returncode != 0:
            pytest.fail(proc.stderr.decode())
        paths.append(str(work / name))
    return paths


@pytest.mark.parametrize("options", [
    ["-dC"], ["-CdrwMintel"], ["-dC", "--prefix-addresses"], ["--demangle", "-dr"],
    ["--demangle=gnu-v3", "-d", "--no-show-raw-insn"], ["-DCR", "-j", ".plt", "-j", ".got"],
], ids=lambda options: " ".join(options))
def test_demangled_listing_matches_objdump(capsys, cxx_inputs, options):
    files = [p for p in cxx_inputs if "R" not in options[0] or not p.endswith(".o")]
    args = [*options, *files]
    theirs = objdump(args)
    code, out, err = run_cli(args, capsys)
    assert (code, err) == (theirs.returncode, "") == (0, "")
    assert "::{lambda(int)#1}" in out or "-DCR" in options
    assert "std::" in out
    assert out == theirs.stdout


def test_demangled_system_library_matches_objdump(capsys):
    """libstdc++'s own PLT and symbols: every name objdump -C prints."""
    path = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"
    require_file(path)
    args = ["-dC", "-j", ".plt", "-j", ".text", "--stop-address=0xa8000", path]
    theirs = objdump(args)
    code, out, err = run_cli(args, capsys)
    assert (code, err) == (0, "")
    assert "std::" in out and "@plt>" in out
    assert out == theirs.stdout


def test_demangler_against_cxxfilt(cxx_inputs):
    """Every _Z name of the g++ builds and of libstdc++'s dynamic symbol table against
    ``c++filt -i`` (objdump's flags: no DMGL_VERBOSE): none wrong; the few left mangled are
    expressions this demangler does not read (objdump prints them demangled)."""
    from x86vm.disasm.demangle import demangle

    if shutil.which("c++filt") is None or shutil.which("nm") is None:
        pytest.skip("needs c++filt and nm")
    names = set()
    for path in [*cxx_inputs, "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"]:
        proc = subprocess.run(["nm", "-D" if path.endswith(".so.6") else "-a", path],
                              capture_output=True, text=True)
        names.update(word.split("@")[0] for line in proc.stdout.splitlines()
                     for word in line.split()[-1:] if word.startswith("_Z"))
    names = sorted(names)
    assert len(names) > 5000
    want = subprocess.run(["c++filt", "-i"], input="\n".join(names) + "\n",
                          capture_output=True, text=True).stdout.splitlines()
    wrong, mangled = [], []
    for name, expected in zip(names, want, strict=True):
        got = demangle(name)
        if got is None:
            if expected != name:
                mangled.append(name)
        elif got != expected:
            wrong.append((name, expected, got))
    assert wrong == []
    assert len(mangled) <= len(names) // 200, mangled[:5]
