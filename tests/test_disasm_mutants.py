"""Corrupt inputs to the new readers (DWARF line programs and .debug_info, symbol tables,
section headers, archives): gcc -g objects, an executable and an archive with random bytes
changed or cut short, listed with -dl, -S, -f/-h/-t/-T and --visualize-jumps.  Every case
ends with a listing or one error line, never a traceback."""

from __future__ import annotations

import contextlib
import io
import random
import shutil
import subprocess

import pytest

from x86vm.cli import main

SOURCE = "int g = 3; static inline int sq(int x) { return x * x; }\n" \
         "int f(int n) { int s = 0; for (int i = 0; i < n; i++) s += sq(i) ^ g; return s; }\n" \
         "int main(int c, char **v) { return f(c) + v[0][0]; }\n"


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> list[bytes]:
    if shutil.which("gcc") is None or shutil.which("ar") is None:
        pytest.skip("needs gcc and ar")
    work = tmp_path_factory.mktemp("disasm_mutants")
    (work / "m.c").write_text(SOURCE)
    subprocess.run(["gcc", "-O2", "-g", "-c", str(work / "m.c"), "-o", str(work / "m.o")],
                   check=True)
    subprocess.run(["gcc", "-O2", "-g", str(work / "m.c"), "-o", str(work / "m")], check=True)
    subprocess.run(["ar", "rcs", str(work / "libm.a"), str(work / "m.o")], check=True)
    return [(work / name).read_bytes() for name in ("m.o", "m", "libm.a")]


def test_mutated_inputs_never_give_a_traceback(tmp_path, monkeypatch, originals) -> None:
    monkeypatch.setenv("X86VM_DISASM_JOBS", "1")
    rng = random.Random(14)
    path = tmp_path / "mutant"
    options = [["-dl"], ["-S"], ["-fhtT"], ["-dr", "--visualize-jumps"], ["-dlC"]]
    for case in range(120):
        data = bytearray(rng.choice(originals))
        for _ in range(rng.choice([1, 2, 4, 16, 64])):
            data[rng.randrange(52, len(data))] = rng.randrange(256)
        if case % 10 == 9:
            data = data[:rng.randrange(len(data))]
        path.write_bytes(data)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(["disasm", *options[case % len(options)], str(path)])
            except SystemExit as exc:
                status = exc.code
        assert status in (0, 1), (case, err.getvalue())
        assert "Traceback" not in err.getvalue()
