"""Static archives in ``x86vm disasm``: "In archive" and each member listed as objdump 2.40
lists it (GNU long member names, a 32-bit member among 64-bit ones, an archive with no
members, a system library archive), and the archive reader on its own (BSD names,
malformed headers, thin archives)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from support.oracles import require_file
from test_disasm_options import objdump, run_cli
from x86vm.disasm.archive import ArchiveError, members

pytestmark = pytest.mark.oracle("objdump-2.40")

SOURCES = {
    "first.c": "int counter; int bump(int x) { return counter += x; }\n",
    "a_member_with_a_long_name.c": "static int t[8]; int get(int i) { return t[i & 7]; }\n",
}


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> list[str]:
    if shutil.which("gcc") is None or shutil.which("ar") is None:
        pytest.skip("needs gcc and ar")
    work = tmp_path_factory.mktemp("disasm_archive")
    objects = []
    for name, text in SOURCES.items():
        (work / name).write_text(text)
        obj = work / name.replace(".c", ".o")
        subprocess.run(["gcc", "-O2", "-g", "-c", str(work / name), "-o", str(obj)],
                       check=True)
        objects.append(str(obj))
    obj32 = work / "first32.o"
    if subprocess.run(["gcc", "-m32", "-O2", "-c", str(work / "first.c"), "-o", str(obj32)],
                      capture_output=True).returncode == 0:
        objects.append(str(obj32))
    library = work / "libmixed.a"
    subprocess.run(["ar", "rcs", str(library), *objects], check=True)
    empty = work / "libempty.a"
    empty.write_bytes(b"!<arch>\n")
    return [str(library), str(empty)]


@pytest.mark.parametrize("options", [["-d"], ["-dr"], ["-dl"], ["-fht"], ["-dw", "-Mintel"]],
                         ids=lambda options: " ".join(options))
def test_archives_list_as_objdump(capsys, archives, options):
    args = [*options, *archives]
    theirs = objdump(args)
    code, out, err = run_cli(args, capsys)
    assert (code, err) == (theirs.returncode, "")
    assert out == theirs.stdout
    assert out.count("In archive ") == 2 and "a_member_with_a_long_name.o:" in out


def test_system_archive_lists_as_objdump(capsys):
    path = "/usr/lib/x86_64-linux-gnu/libXau.a"
    require_file(path)
    theirs = objdump(["-dr", path])
    code, out, err = run_cli(["-dr", path], capsys)
    assert (code, err, out) == (theirs.returncode, "", theirs.stdout)


def _header(name: bytes, size: int) -> bytes:
    return name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) + b"0".ljust(6) + \
        b"644".ljust(8) + str(size).encode().ljust(10) + b"`\n"


def test_reader_names_and_errors():
    long_names = b"a_very_long_member_name.o/\n"
    data = (b"!<arch>\n" + _header(b"/", 4) + b"\0\0\0\0" + _header(b"//", len(long_names))
            + long_names + b"\n" + _header(b"/0", 3) + b"abc" + b"\n"
            + _header(b"#1/6", 8) + b"bsd.o\0xy" + _header(b"short.o/", 2) + b"hi")
    found = [(m.name, m.data) for m in members(data)]
    assert found == [("a_very_long_member_name.o", b"abc"), ("bsd.o", b"xy"),
                     ("short.o", b"hi")]
    with pytest.raises(ArchiveError, match="malformed"):
        members(b"!<arch>\n" + _header(b"x.o/", 50) + b"short")
    with pytest.raises(ArchiveError, match="thin"):
        members(b"!<thin>\n")
