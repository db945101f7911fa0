"""``x86vm disasm --visualize-jumps``: the ASCII art of jumps inside each function, compared
byte for byte with objdump 2.40 (gcc -O2 builds with loops, switch tables and calls, the
test programs of test_disasm_options, a slice of libc), with the layout options it mixes
with; and the levelling of crossing jumps on its own."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from support.oracles import require_file
from test_disasm_options import inputs, objdump, run_cli  # noqa: F401 (fixture)
from x86vm.disasm.jumps import levelled

pytestmark = pytest.mark.oracle("objdump-2.40")

SOURCE = r"""
int g(int);
int sw(int n) {
    switch (n) { case 0: return g(1); case 1: return g(7) + 2; case 2: return 5;
                 case 3: return g(9) * 3; case 4: return 11; default: return 0; }
}
int f(int n) {
    int s = 0;
    for (int i = 0; i < n; i++) { if (i & 1) s += g(i); else s -= i; if (s > 100) break; }
    return s;
}
"""


@pytest.fixture(scope="module")
def jumpy(tmp_path_factory) -> list[str]:
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    work = tmp_path_factory.mktemp("disasm_jumps")
    (work / "jumpy.c").write_text(SOURCE)
    out = work / "jumpy.o"
    subprocess.run(["gcc", "-O2", "-fno-pic", "-c", str(work / "jumpy.c"), "-o", str(out)],
                   check=True)
    return [str(out)]


@pytest.mark.parametrize("options", [
    ["-d", "--visualize-jumps"], ["-dw", "--visualize-jumps", "-Mintel"],
    ["-d", "--visualize-jumps", "--no-show-raw-insn"], ["-dr", "--visualize-jumps"],
    ["-d", "--visualize-jumps", "--prefix-addresses"], ["-d", "--visualize-jumps=off"],
    ["-D", "--visualize-jumps", "--no-addresses"], ["-d", "--visualize-jumps", "--insn-width=3"],
    ["-d", "--visualize-jumps=color"], ["-dw", "--visualize-jumps=extended-color"],
], ids=lambda options: " ".join(options))
def test_jump_art_matches_objdump(capsys, inputs, jumpy, options):  # noqa: F811
    args = [*options, *jumpy, *inputs]
    theirs = objdump(args)
    code, out, err = run_cli(args, capsys)
    assert (code, err) == (theirs.returncode, "")
    assert out == theirs.stdout
    if options[1:2] == ["--visualize-jumps"]:
        assert "\\--" in out and "/->" in out or "--prefix" in options[2:3]


def test_jump_art_of_libc_matches_objdump(capsys):
    path = "/usr/lib/x86_64-linux-gnu/libc.so.6"
    require_file(path)
    args = ["-d", "--visualize-jumps", "--start-address=0x28000", "--stop-address=0x34000",
            path]
    theirs = objdump(args)
    code, out, err = run_cli(args, capsys)
    assert (code, err, out) == (0, "", theirs.stdout)
    assert "|" in out and "-> " in out


def test_crossing_jumps_get_levels():
    # 10->40 and 20->50 overlap: two levels; 60->70 fits beside the first
    art = levelled([(10, 40), (20, 50), (60, 70)])
    assert art is not None and art.max_level == 1
    assert art.column(10) == "   /-- "
    assert art.column(20) == "/--|-- "
    assert art.column(40) == "|  \\-> "
    assert art.column(50) == "\\----> "
    assert levelled([]) is None
