"""``x86vm disasm``: objdump's options, objdump's output, one-line errors for bad input."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from oracle.objdump import OracleFormatter, parse_wide_listing, run_objdump
from support.disasm_cli import run_cli
from support.oracles import require_file
from x86vm.cli import main

PYTHON = "/usr/bin/python3.11"
SRC = str(Path(__file__).resolve().parents[1] / "src")


OBJDUMP_ERROR_STATUS = 1  # objdump 2.40's status for a bad file or option (checked below)


def assert_one_error_line(code: int, err: str, *needles: str) -> None:
    assert code == OBJDUMP_ERROR_STATUS
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("x86vm: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture()
def small_elf(tmp_path) -> str:
    """A copy of a real ELF executable small enough to corrupt: the first /usr/bin one."""
    for candidate in ("/usr/bin/true", "/bin/true", sys.executable):
        if os.path.exists(candidate):
            target = tmp_path / "prog"
            shutil.copy(candidate, target)
            return str(target)
    pytest.skip("no ELF executable to copy")


# -- bad input: one line, objdump's exit status, never a traceback ---------------------------

def test_missing_file(capsys):
    code, _, err = run_cli(["/nonexistent/file"], capsys)
    assert_one_error_line(code, err, "/nonexistent/file", "No such file")


def test_directory(capsys, tmp_path):
    code, _, err = run_cli([str(tmp_path)], capsys)
    assert_one_error_line(code, err, "directory")


def test_not_elf(capsys, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("just text\n")
    code, _, err = run_cli([str(path)], capsys)
    assert_one_error_line(code, err, "file format not recognized")


@pytest.mark.parametrize("keep", [4, 20, 64, 200, 4096])
def test_truncated_elf(capsys, tmp_path, small_elf, keep):
    data = Path(small_elf).read_bytes()[:keep]
    path = tmp_path / "truncated"
    path.write_bytes(data)
    code, _, err = run_cli(["-d", str(path)], capsys)
    assert_one_error_line(code, err, str(path))


@pytest.mark.oracle("objdump-2.40")
def test_section_data_past_end_of_file(capsys, tmp_path, small_elf, monkeypatch):
    """Headers intact, .text pointing past the end: caught when its bytes are read, and
    reported in objdump's words."""
    from elftools.elf.elffile import ELFFile

    raw = bytearray(Path(small_elf).read_bytes())
    with open(small_elf, "rb") as stream:
        elf = ELFFile(stream)
        index = next(i for i, s in enumerate(elf.iter_sections()) if s.name == ".text")
        header_at = elf.header["e_shoff"] + index * elf.header["e_shentsize"]
    offset_field = header_at + (24 if raw[4] == 2 else 16)
    raw[offset_field:offset_field + 4] = (len(raw) + 0x1000).to_bytes(4, "little")
    path = tmp_path / "corrupt"
    path.write_bytes(bytes(raw))
    monkeypatch.setattr("x86vm.cli.disasm.decoder_formatter",
                        lambda mode, syntax: lambda data, off, addr, pa: (1, "(stand-in)"))
    code, _, err = run_cli(["-d", str(path)], capsys)
    # objdump 2.40 warns, says it cannot read .text, skips it and exits 0
    theirs = subprocess.run(["objdump", "-d", str(path)], capture_output=True, text=True)
    assert code == theirs.returncode == 0
    assert "Traceback" not in err
    assert [line.removeprefix("x86vm: ") for line in err.splitlines()] == \
        [line.removeprefix("objdump: ") for line in theirs.stderr.splitlines()]
    assert any("Reading section .text failed" in line for line in err.splitlines())


def test_other_architecture(capsys, tmp_path, small_elf):
    raw = bytearray(Path(small_elf).read_bytes())
    raw[18:20] = (183).to_bytes(2, "little")  # EM_AARCH64
    path = tmp_path / "arm"
    path.write_bytes(bytes(raw))
    code, _, err = run_cli([str(path)], capsys)
    assert_one_error_line(code, err, "architecture")


@pytest.mark.parametrize("args, needle", [
    (["-j", ".no_such_section"], ".no_such_section"),
    (["--bogus-option"], "--bogus-option"),
    (["-b", "binary", "-m", "z80"], "z80"),
    (["-b", "binary"], "machine"),
    (["-b", "nosuch"], "nosuch"),
    (["--start-address=zz"], "zz"),
    (["--insn-width=0"], "width"),
])
def test_bad_options(capsys, small_elf, args, needle):
    code, _, err = run_cli([*args, small_elf], capsys)
    assert_one_error_line(code, err, needle)


@pytest.mark.oracle("objdump-2.40")
@pytest.mark.parametrize("args", [["-b", "srec"], ["-b", "ihex"], ["-b", "elf32-little"],
                                  ["-b", "elf64-little"], ["-b", "elf32-i386"], ["-m", ""],
                                  ["-b", "binary", "-m", "i386", "-m", ""]])
def test_targets_and_machines_objdump_falls_back_on(capsys, small_elf, args):
    """-b with a target that does not take the file: objdump tries every target (an ELF file
    is listed); the generic ELF target of the file's class takes it and knows no
    architecture; an empty -m is i386 (bfd_scan_arch)."""
    objdump = subprocess.run(["objdump", "-D", *args, small_elf], capture_output=True,
                             text=True)
    code, out, err = run_cli(["-D", *args, small_elf], capsys)
    assert code == objdump.returncode
    assert "Traceback" not in err
    if code == 0:
        assert out == objdump.stdout


@pytest.mark.parametrize("args, needle", [
    (["--disassemble=no_such_symbol_here"], "no_such_symbol_here"),
    (["-M", "bogus"], "bogus"),
])
def test_what_objdump_lets_pass_is_a_warning(capsys, small_elf, args, needle):
    """objdump 2.40 lists on (status 0) past an unknown -M option or symbol; x86vm says so."""
    objdump = subprocess.run(["objdump", "-d", *args, small_elf], capture_output=True)
    code, _, err = run_cli(["-d", *args, small_elf], capsys)
    assert code == objdump.returncode == 0
    assert err.startswith("x86vm: warning:") and needle in err


@pytest.mark.parametrize("make", ["fifo", "chardev", "directory"])
def test_what_is_not_a_regular_file_is_refused_like_objdump(tmp_path, make):
    """/dev/zero or a FIFO would be read forever; objdump refuses them, status 1."""
    if make == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
    else:
        path = tmp_path if make == "directory" else Path("/dev/zero")
    env = dict(os.environ, PYTHONPATH=SRC)
    args = ["-D", "-b", "binary", "-m", "i386", str(path)]
    proc = subprocess.run([sys.executable, "-m", "x86vm", "disasm", *args], capture_output=True,
                          text=True, env=env, timeout=60)
    objdump = subprocess.run(["objdump", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == objdump.returncode == OBJDUMP_ERROR_STATUS
    want = "is a directory" if make == "directory" else "is not an ordinary file"
    assert want in objdump.stderr and proc.stderr == f"x86vm: error: '{path}' {want}\n"


def test_no_traceback_from_a_real_process(tmp_path, small_elf):
    path = tmp_path / "truncated"
    path.write_bytes(Path(small_elf).read_bytes()[:300])
    env = dict(os.environ, PYTHONPATH=SRC)
    proc = subprocess.run([sys.executable, "-m", "x86vm", "disasm", "-d", str(path)],
                          capture_output=True, text=True, env=env)
    objdump = subprocess.run(["objdump", "-d", str(path)], capture_output=True)
    assert proc.returncode == objdump.returncode == OBJDUMP_ERROR_STATUS
    assert proc.stderr.startswith("x86vm: error:") and "Traceback" not in proc.stderr


# -- output: the same bytes objdump prints ------------------------------------------------------

needs_objdump = pytest.mark.oracle("objdump-2.40")


def _use_objdump_texts(monkeypatch, path: str, objdump_args: list[str]) -> OracleFormatter:
    """Drive the CLI with a stand-in formatter holding objdump's own instruction texts."""
    wide = [a for a in objdump_args if a not in ("-w",) and not a.startswith("--insn")]
    formatter = OracleFormatter(parse_wide_listing(run_objdump([*wide, "-w"], path)))
    monkeypatch.setattr("x86vm.cli.disasm.decoder_formatter", lambda mode, syntax: formatter)
    return formatter


@needs_objdump
@pytest.mark.parametrize("args", [
    ["-d", "-j", ".plt"],
    ["-d", "--start-address=0x420f10", "--stop-address=0x421000"],
    ["-d", "-w", "--start-address=0x421000", "--stop-address=0x421100"],
    ["--disassemble=Py_Main"],
])
def test_cli_listing_matches_objdump(monkeypatch, capsys, args):
    require_file(PYTHON)
    formatter = _use_objdump_texts(monkeypatch, PYTHON, args)
    code, out, err = run_cli([*args, PYTHON], capsys)
    assert (code, err) == (0, "")
    assert out == run_objdump(args, PYTHON)
    assert not formatter.misses and not formatter.address_mismatches


@needs_objdump
@pytest.mark.parametrize("machine", ["i8086", "i386", "i386:x86-64"])
def test_cli_raw_image_matches_objdump(monkeypatch, capsys, tmp_path, machine):
    path = tmp_path / "boot.bin"
    path.write_bytes(bytes.fromhex("fa31c08ed8bc007cfbe80500ebfe") + bytes(12)
                     + bytes.fromhex("b40ecd10c3") + bytes(2))
    args = ["-D", "-b", "binary", "-m", machine, "--adjust-vma=0x7c00"]
    _use_objdump_texts(monkeypatch, str(path), args)
    code, out, err = run_cli([*args, str(path)], capsys)
    assert (code, err) == (0, "")
    assert out == run_objdump(args, str(path))


@needs_objdump
def test_cli_lists_several_files_in_order(monkeypatch, capsys, tmp_path):
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    first.write_bytes(bytes.fromhex("5589e5c3"))
    second.write_bytes(bytes.fromhex("31c0c3"))
    args = ["-D", "-b", "binary", "-m", "i386"]
    records = {}
    for path in (first, second):
        records.update(parse_wide_listing(run_objdump([*args, "-w"], str(path))))
    monkeypatch.setattr("x86vm.cli.disasm.decoder_formatter",
                        lambda mode, syntax: _MergedOracle(str(first), str(second), args))
    code, out, err = run_cli([*args, str(first), str(second)], capsys)
    assert (code, err) == (0, "")
    assert out == run_objdump(args, str(first)) + run_objdump(args, str(second))


class _MergedOracle:
    """Stand-in for two raw images listed in one run (both start at address 0)."""

    def __init__(self, *spec):
        *paths, args = spec
        self.formatters = [OracleFormatter(parse_wide_listing(run_objdump([*args, "-w"], p)))
                           for p in paths]

    def __call__(self, data, offset, address, print_address):
        for formatter in self.formatters:
            length, text = formatter(data, offset, address, print_address)
            if text != "<no oracle record>":
                return length, text
        return 1, "<no oracle record>"


# -- with the real decoder ---------------------------------------------------------------------

@needs_objdump
@pytest.mark.parametrize("syntax_args", [[], ["-M", "intel"]], ids=["att", "intel"])
def test_cli_with_real_decoder_matches_objdump(capsys, syntax_args):
    require_file(PYTHON)
    args = ["-d", *syntax_args, "--start-address=0x41f000", "--stop-address=0x421400"]
    code, out, err = run_cli([*args, PYTHON], capsys)
    assert (code, err) == (0, "")
    expected = run_objdump(args, PYTHON)
    diff = [(a, b) for a, b in zip(expected.split("\n"), out.split("\n"), strict=False)
            if a != b]
    assert out == expected, diff[:10]


# -- corrupt input never escapes as an exception ------------------------------------------------

@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(-2048, 4095), st.integers(0, 255)), min_size=1,
                      max_size=8))
@example(edits=[(-1177, 1)])  # once a huge NOBITS size: MemoryError instead of an error line
@example(edits=[(4064, 43)])  # a dynamic relocation of a type BFD 2.40 has no howto for
@pytest.mark.oracle("objdump-2.40")
def test_corrupted_elf_gives_a_listing_or_objdumps_error_lines(tmp_path, small_elf, edits):
    raw = bytearray(Path(small_elf).read_bytes())
    for offset, value in edits:  # ELF and program headers, dynamic tables; <0: section headers
        raw[offset % len(raw)] = value
    path = tmp_path / "corrupt"
    path.write_bytes(bytes(raw))
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")  # names may be any bytes
    err = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["disasm", "-d", "--stop-address=0x3000", str(path)])
        except SystemExit as exc:
            code = exc.code
    lines = err.getvalue().splitlines()
    assert "Traceback" not in err.getvalue()
    if code != 0:  # objdump's status and its lines (BFD's messages, then the error)
        theirs = subprocess.run(["objdump", "-d", "--stop-address=0x3000", str(path)],
                                capture_output=True, text=True, errors="surrogateescape")
        assert code == theirs.returncode == OBJDUMP_ERROR_STATUS
        assert lines[-1].startswith("x86vm: error: ")
        assert [line.removeprefix("x86vm: ").removeprefix("error: ") for line in lines] == \
            [line.removeprefix("objdump: ").removeprefix("error: ")
             for line in theirs.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("width", ["1", "3", "16", "5000", str(1 << 16)])
def test_insn_width_at_its_limits_matches_objdump(tmp_path, width):
    """Any width up to the documented limit lists as objdump does (in linear memory)."""
    path = tmp_path / "code.bin"
    path.write_bytes(bytes.fromhex("90 48 8b 05 10 00 00 00 0f 1f 84 00 00 00 00 00 c3"))
    args = ["-D", "-b", "binary", "-m", "i386:x86-64", f"--insn-width={width}", str(path)]
    env = dict(os.environ, PYTHONPATH=SRC)
    ours = subprocess.run([sys.executable, "-m", "x86vm", "disasm", *args], capture_output=True,
                          env=env, timeout=120)
    theirs = subprocess.run(["objdump", *args], capture_output=True, timeout=120)
    assert ours.returncode == theirs.returncode == 0
    assert ours.stdout == theirs.stdout


def test_insn_width_past_the_limit_is_one_line(capsys, small_elf):
    code, _, err = run_cli(["-d", f"--insn-width={10**14}", small_elf], capsys)
    assert_one_error_line(code, err, "65536")


@pytest.mark.parametrize("machine", ["i8086", "i386", "i386:x86-64"])
@pytest.mark.parametrize("vma", ["-1", "-3", "0xffffffff", "0xfffffffe", "0xfffffffffffffffe",
                                 "0xfff0", "010"])
def test_adjust_vma_near_the_top_of_the_address_space_matches_objdump(tmp_path, machine, vma):
    """Negative values wrap as bfd_vma does; 32-bit targets print the low 8 digits; a
    section that wraps past 2^64 ends with objdump's out-of-bounds line."""
    path = tmp_path / "nops.bin"
    path.write_bytes(b"\x90" * 4)
    args = ["-D", "-b", "binary", "-m", machine, f"--adjust-vma={vma}", str(path)]
    env = dict(os.environ, PYTHONPATH=SRC)
    ours = subprocess.run([sys.executable, "-m", "x86vm", "disasm", *args], capture_output=True,
                          env=env, timeout=120)
    theirs = subprocess.run(["objdump", *args], capture_output=True, timeout=120)
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)


@pytest.mark.parametrize("option", ["--adjust-vma", "--start-address", "--stop-address"])
def test_addresses_past_64_bits_read_as_strtoul_does(capsys, small_elf, option):
    """objdump reads addresses with strtoul: past 64 bits they are 2^64 - 1 (for start/stop
    its "not given"), status 0; the listing is the one for 0xffffffffffffffff."""
    if shutil.which("objdump") is None:
        pytest.skip("needs objdump")
    huge = subprocess.run(["objdump", "-d", f"{option}=0x1fffffffffffffff0", small_elf],
                          capture_output=True)
    top = subprocess.run(["objdump", "-d", f"{option}=0xffffffffffffffff", small_elf],
                         capture_output=True)
    assert huge.returncode == top.returncode == 0 and huge.stdout == top.stdout
    code, out, err = run_cli(["-d", f"{option}=0x1fffffffffffffff0", small_elf], capsys)
    code_top, out_top, _ = run_cli(["-d", f"{option}=0xffffffffffffffff", small_elf], capsys)
    assert (code, err) == (0, "") and (code_top, out_top) == (0, out)
