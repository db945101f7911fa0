"""``x86vm decodecode`` against the kernel's own scripts/decodecode (objdump) on real Oops logs.

The oracle is Linux 6.1's ``scripts/decodecode`` from /usr/src/linux-source-6.1.tar.xz, run
with ``as``/``objdump`` 2.40 and given what x86vm reads from the log itself: ``PC=`` (the
faulting address, when the log prints it as a number) and ``AFLAGS=--32`` for 32-bit logs.
The logs in tests/data/oops/ are excerpts of public bug reports (source on each first line).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from x86vm.cli import main
from x86vm.disasm.decodecode import DecodeError, decodecode, parse_oops

DATA = Path(__file__).parent / "data" / "oops"
LOGS = sorted(DATA.glob("*.txt"))
KERNEL_SOURCE = Path("/usr/src/linux-source-6.1.tar.xz")
SCRIPT_MEMBER = "linux-source-6.1/scripts/decodecode"
MODE_OVERRIDES = {"code-words-parenthesized.txt": 32, "code-robbie-cao-i386-no-ip.txt": 32}
EXPECTED_MODE = {"linux-2.6.9-i386-kobject-add.txt": 32, "code-openzfs-594-i386-xattr.txt": 32,
                 "linux-7.1-cachyos-iomap-bug.txt": 64}


def _script() -> Path | None:
    """scripts/decodecode, extracted once into the temporary directory."""
    cached = Path(tempfile.gettempdir()) / "x86vm-decodecode-6.1" / "decodecode"
    if cached.exists():
        return cached
    if not KERNEL_SOURCE.exists() or not (shutil.which("as") and shutil.which("objdump")):
        return None
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(KERNEL_SOURCE) as tar:
        member = tar.extractfile(SCRIPT_MEMBER)
        assert member is not None
        partial = cached.with_suffix(".part")
        partial.write_bytes(member.read())
    partial.replace(cached)
    return cached


@pytest.fixture(scope="module")
def script() -> Path:
    path = _script()
    if path is None:
        pytest.skip("needs linux-source-6.1, as and objdump")
    return path


def run_script(script: Path, text: str, mode: int, pc: int | None) -> str:
    env = {"PATH": os.environ["PATH"], "TMPDIR": "/tmp", "LC_ALL": "C.UTF-8"}
    if pc is not None:
        env["PC"] = f"0x{pc:x}"
    if mode == 32:
        env["AFLAGS"] = "--32"
    with tempfile.TemporaryDirectory() as cwd:  # the script's unquoted echo globs in cwd
        done = subprocess.run(["bash", str(script)], input=text.encode(), env=env, cwd=cwd,
                              capture_output=True, check=False, timeout=60)
    return done.stdout.decode("utf-8", "replace")


def test_the_logs_cover_both_modes_and_several_kernels() -> None:
    modes = {parse_oops(p.read_text(), mode=MODE_OVERRIDES.get(p.name)).mode for p in LOGS}
    assert modes == {32, 64}
    versions = {p.name.split("-")[1] for p in LOGS if p.name.startswith("linux-")}
    assert len(versions) >= 8, versions
    for path in LOGS:
        assert path.read_text().startswith("# Source: "), path


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.name)
def test_same_text_as_scripts_decodecode(path: Path, script: Path) -> None:
    text = path.read_text()
    oops = parse_oops(text, mode=MODE_OVERRIDES.get(path.name))
    if path.name in EXPECTED_MODE:
        assert oops.mode == EXPECTED_MODE[path.name]
    expected = run_script(script, text, oops.mode, oops.pc)
    assert "trapping instruction" in expected
    assert decodecode(oops) == expected


def test_mode_and_pc_come_from_the_log() -> None:
    old = parse_oops((DATA / "linux-2.6.9-i386-kobject-add.txt").read_text())
    assert (old.mode, old.pc) == (32, 0xC01DE48C)
    assert old.registers["EAX"] == 0xC038DB78 and old.registers["ESP"] == 0xD7568F2C
    new = parse_oops((DATA / "linux-6.1-debian-amd64-null-deref.txt").read_text())
    assert (new.mode, new.pc, new.pc_sub) == (64, None, 42)
    assert new.registers["RSP"] == 0xFFFF97C1C972F9F0
    user = parse_oops("RIP: 0033:0x7f82b7b2986d\nCode: 0f 05 <48> 3d 01 f0 ff ff\n"
                      "RAX: ffffffffffffffda RBX: 0000556d01a78d10\n")
    assert (user.mode, user.pc) == (64, 0x7F82B7B2986D)
    eip = parse_oops("EIP: 0060:[<f50212e0>] EFLAGS: 00200803 CPU: 0\n"
                     "EAX: f50212a0 EBX: 00000010\nCode: 8b 45 <0f> 0b\n")
    assert (eip.mode, eip.pc) == (32, 0xF50212E0)


def _random_log(rng: random.Random) -> tuple[str, int, int | None]:
    """A Code: line of random bytes (some real code idioms mixed in), a marker anywhere,
    sometimes split over continuation lines, with a 32- or 64-bit register dump."""
    idioms = [b"\x0f\x0b", b"\x48\x89\xe5", b"\xe8\x00\x10\x00\x00", b"\x00\x00\x00\x00",
              b"\x66\x2e\x0f\x1f\x84\x00\x00\x00\x00\x00", b"\xc3", b"\xcc", b"\x55"]
    data = bytearray()
    while len(data) < 64:
        data += rng.choice(idioms) if rng.random() < 0.4 else bytes([rng.randrange(256)])
    data = data[:64]
    marker = rng.randrange(len(data))
    words = [f"<{b:02x}>" if i == marker else f"{b:02x}" for i, b in enumerate(data)]
    mode = rng.choice((32, 64))
    pc = rng.choice((None, 0xFFFFFFFF81000000 + rng.randrange(1 << 20))) if mode == 64 else \
        rng.choice((None, 0xC1000000 + rng.randrange(1 << 20)))
    if mode == 64:
        head = (f"RIP: 0010:[<{pc:016x}>] func+0x1/0x2\n" if pc else "RIP: 0010:func+0x1/0x2\n")
        head += "RAX: 0000000000000000\n"
    else:
        head = (f"EIP: 0060:[<{pc:08x}>] EFLAGS: 00010246\n" if pc else "EIP: func+0x1/0x2\n")
        head += "EAX: 00000000 EBX: 00000000\n"
    if rng.random() < 0.3:
        cut = rng.randrange(8, 56)
        body = " ".join(words[:cut]) + "\n " + " ".join(words[cut:])
    else:
        body = " ".join(words)
    return f"{head}[ 1.000000] Code: {body}\nCall Trace:\n", mode, pc


@pytest.mark.parametrize("seed", range(12))
def test_random_code_lines_match_the_script(seed: int, script: Path) -> None:
    text, mode, pc = _random_log(random.Random(seed))
    oops = parse_oops(text)
    assert (oops.mode, oops.pc) == (mode, pc)
    assert decodecode(oops) == run_script(script, text, mode, pc)


def test_cli_reads_a_file_or_stdin(capsys, monkeypatch) -> None:
    import io

    path = DATA / "linux-5.13-fedora-list-del-bug.txt"
    assert main(["decodecode", str(path)]) == 0
    out = capsys.readouterr().out
    assert "<-- trapping instruction" in out and "ud2" in out
    monkeypatch.setattr("sys.stdin", io.StringIO(path.read_text()))
    assert main(["decodecode", "--pc", "ffffffffa7000000", "-M", "intel"]) == 0
    intel = capsys.readouterr().out
    assert "ffffffffa7000000:*\t0f 0b                \tud2\t\t<-- trapping" in intel


def test_cli_errors_are_one_line(capsys, tmp_path) -> None:
    log = tmp_path / "log.txt"
    log.write_text("RIP: 0010:x+0x1/0x2\nCode: Bad RIP value.\n")
    assert main(["decodecode", str(log)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("x86vm: error: the Code: line has no hex") and err.count("\n") == 1
    log.write_text("nothing here\n")
    assert main(["decodecode", str(log)]) == 2
    assert "no 'Code:' line" in capsys.readouterr().err
    with pytest.raises(DecodeError):
        parse_oops("Code: 0f0b 48\n")
