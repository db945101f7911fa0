"""QEMU TCG as the oracle for the test guests: the scenarios, how to run them under QEMU, and
the recorded results (``expected_qemu.json``) used where QEMU is not installed.

    python3 tests/guests/oracle.py record     # rebuild the guests, rerun QEMU, rewrite the file

Each scenario names a guest image, the QEMU arguments that boot it, and the equivalent x86vm
``load_image`` arguments. QEMU runs with the
guest directory as its working directory and relative file names, because QEMU passes
"<kernel file> <append>" as the Multiboot command line (as GRUB does) and the module's
``-initrd`` spec as its string; the x86vm side is given the same strings.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECORDED = HERE / "expected_qemu.json"
QEMU = "qemu-system-x86_64"
SERIAL_FILE = "serial.out"
# "-nographic" would put the serial port on a stdio mux, whose output QEMU can drop when it
# exits right after the guest's last write; a file is written synchronously. With a display
# device present SeaBIOS keeps its banners off the serial port, so the file holds exactly the
# guest's bytes.
QEMU_BASE = [QEMU, "-display", "none", "-no-reboot", "-m", "128", "-monitor", "none",
             "-serial", f"file:{SERIAL_FILE}", "-device", "isa-debug-exit,iobase=0xf4,iosize=1"]
MODULE_NAME = "module.txt"
MODULE_TEXT = b"first module line\nsecond line\n"


@dataclass(frozen=True)
class Scenario:
    image: str
    qemu_args: tuple[str, ...]
    cmdline: str = ""
    modules: tuple[tuple[str, str], ...] = ()  # (file, string) pairs
    testdev: bool = False  # attach pc-testdev
    fmt: str | None = None  # x86vm loader (None: auto-detect)
    i8042: bool = True  # False: a machine without the keyboard controller (QEMU i8042=off)
    # Linux-protocol guest: QEMU cannot boot it, so its oracle is the PVH run of the same body
    # with the first lines (the entry banner) replaced by these.
    oracle: str | None = None
    replace_head: tuple[str, ...] = field(default=())


SCENARIOS: dict[str, Scenario] = {
    "realmode_hello": Scenario(
        "realmode_hello.bin",
        ("-drive", "file=realmode_hello.bin,format=raw,if=floppy", "-boot", "a")),
    "multiboot": Scenario(
        "multiboot.elf",
        ("-kernel", "multiboot.elf", "-append", "hello world", "-initrd", "module.txt arg1"),
        cmdline="multiboot.elf hello world", modules=((MODULE_NAME, "module.txt arg1"),)),
    "bundled_hello": Scenario(
        "hello.bin", ("-drive", "file=hello.bin,format=raw,if=floppy", "-boot", "a")),
    "bundled_hello_no_i8042": Scenario(
        "hello.bin", ("-M", "pc,i8042=off", "-drive", "file=hello.bin,format=raw,if=floppy",
                      "-boot", "a"), i8042=False),
    "tutorial": Scenario("tutorial.elf", ("-kernel", "tutorial.elf"), cmdline="tutorial.elf"),
    "long64_pvh": Scenario(
        "long64_pvh.elf",
        ("-device", "pc-testdev", "-kernel", "long64_pvh.elf", "-append", "console=ttyS0"),
        cmdline="console=ttyS0", testdev=True),
    "long64_pvh_triple": Scenario(
        "long64_pvh.elf",
        ("-device", "pc-testdev", "-kernel", "long64_pvh.elf", "-append", "triple"),
        cmdline="triple", testdev=True),
    "long64_linux": Scenario(
        "long64_linux.elf", (), cmdline="console=ttyS0", testdev=True, fmt="linux",
        oracle="long64_pvh",
        replace_head=("long-mode guest via the Linux 64-bit boot protocol",
                      "boot_params header: 0x53726448")),  # "HdrS" (boot.rst)
    "long64_bzimage": Scenario(
        "long64.bzImage", (), cmdline="console=ttyS0", testdev=True, oracle="long64_pvh",
        replace_head=("long-mode guest via the Linux 64-bit boot protocol",
                      "boot_params header: 0x53726448")),
    "long64_linux_triple": Scenario(
        "long64_linux.elf", (), cmdline="triple", testdev=True, fmt="linux",
        oracle="long64_pvh_triple",
        replace_head=("long-mode guest via the Linux 64-bit boot protocol",
                      "boot_params header: 0x53726448")),
}


def qemu_available() -> bool:
    return shutil.which(QEMU) is not None


BUNDLED_HELLO = HERE.parents[1] / "src" / "x86vm" / "guests" / "hello.bin"


def prepare(guest_dir: Path) -> None:
    """Put the scenario inputs that are not built guests next to them."""
    (Path(guest_dir) / MODULE_NAME).write_bytes(MODULE_TEXT)
    shutil.copyfile(BUNDLED_HELLO, Path(guest_dir) / "hello.bin")


def run_qemu(name: str, guest_dir: Path, timeout: float = 60) -> dict:
    """Run scenario ``name`` under QEMU TCG; returns {"status", "serial"}."""
    sc = SCENARIOS[name]
    if sc.oracle:
        return derive(sc, run_qemu(sc.oracle, guest_dir, timeout))
    prepare(guest_dir)
    serial_file = Path(guest_dir) / SERIAL_FILE
    serial_file.unlink(missing_ok=True)
    proc = subprocess.run([*QEMU_BASE, *sc.qemu_args], cwd=guest_dir, capture_output=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if proc.stderr:
        raise RuntimeError(f"QEMU complained running {name}: {proc.stderr.decode()[-500:]}")
    return {"status": proc.returncode, "serial": serial_file.read_bytes().decode("latin-1")}


def qemu_serial(cwd: Path, *args: str, timeout: float = 60) -> tuple[int, str]:
    """QEMU_BASE plus ``args`` run in ``cwd`` (relative file names): its exit status (the
    debug-exit code) and the guest's serial output."""
    serial_file = Path(cwd) / SERIAL_FILE
    serial_file.unlink(missing_ok=True)
    proc = subprocess.run([*QEMU_BASE, *args], cwd=cwd, capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    return proc.returncode, serial_file.read_bytes().decode("latin-1")


def derive(sc: Scenario, base: dict) -> dict:
    """The expectation for a scenario whose oracle is another one (see Scenario.oracle)."""
    lines = base["serial"].split("\n")
    head = len(sc.replace_head)
    return {"status": base["status"], "serial": "\n".join([*sc.replace_head, *lines[head:]])}


def recorded(name: str) -> dict:
    sc = SCENARIOS[name]
    data = json.loads(RECORDED.read_text())
    return derive(sc, data[sc.oracle]) if sc.oracle else data[name]


def record() -> int:
    import tempfile

    sys.path.insert(0, str(HERE.parent))
    from guests.build import build_all

    with tempfile.TemporaryDirectory() as tmp:
        build_all(Path(tmp))
        results = {name: run_qemu(name, Path(tmp)) for name, sc in SCENARIOS.items()
                   if not sc.oracle}
    version = subprocess.run([QEMU, "--version"], capture_output=True, text=True).stdout
    results["_qemu_version"] = version.splitlines()[0]
    RECORDED.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    for name, r in results.items():
        print(name, r if isinstance(r, str) else f"status {r['status']}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["record"]:
        sys.exit(record())
    print(__doc__.strip().splitlines()[-1], file=sys.stderr)
    sys.exit(2)
