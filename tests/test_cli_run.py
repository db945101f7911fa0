"""``x86vm run`` as a user sees it: one-line errors with status 2, the guest's output on the
serial console, and the exit status mirroring debug-exit (QEMU isa-debug-exit semantics)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from guests.fixtures import guest_dir  # noqa: F401  (fixture)
from test_boot_e2e import expectation
from test_kvm_support import assemble, runs_guests
from x86vm.cli.run import parse_memory_size

SRC = Path(__file__).resolve().parents[1] / "src"


def x86vm(*args, timeout=60, stdin=subprocess.DEVNULL):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    argv = [os.fsencode(a) if isinstance(a, str) else a for a in map(str, args)]
    return subprocess.run([sys.executable, "-m", "x86vm", *argv], env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=stdin)


@pytest.mark.parametrize("args, message", [
    (["--memory", "12Q"], "bad memory size '12Q'"),
    (["--memory", "512K"], "at least 1M"),
    (["--loader", "elf"], "unknown loader 'elf': choose one of flat, multiboot, linux, pvh, rom"),
    (["/nonexistent.img"], "cannot read image /nonexistent.img: No such file or directory"),
    (["--timeout", "0"], "bad --timeout '0'"),
    (["--debug-exit-port", "70000"], "bad --debug-exit-port '70000'"),
    (["--timeout", "1e10"], "at most 31536000 seconds"),
    (["--cmdline", "caf\udce9"], "--cmdline is not valid UTF-8 (byte 3)"),
    (["/dev/zero"], "image /dev/zero is not an ordinary file"),
    (["--initrd", "/dev/zero", "/dev/null"], "is not an ordinary file"),
    (["--memory", "1M", "BIG"], "is 2.0 MiB, larger than 1.0 MiB (the guest RAM)"),
])
def test_bad_options_are_one_line_errors(args, message, tmp_path):
    big = tmp_path / "big.img"  # sparse: refused from its size, before it is read
    with open(big, "wb") as f:
        f.truncate(2 << 20)
    done = x86vm("run", *[big if a == "BIG" else a for a in args])
    assert done.returncode == 2
    assert done.stderr.startswith("x86vm: error: ") and message in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


@pytest.mark.parametrize("text, size", [("128M", 128 << 20), ("1G", 1 << 30), ("64", 64 << 20),
                                        ("2GiB", 2 << 30), ("4096k", 4 << 20)])
def test_memory_sizes(text, size):
    assert parse_memory_size(text) == size


# -- running guests: needs KVM --------------------------------------------------------------

HELLO_SECTOR = """
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov $msg, %si
next:
    lodsb
    test %al, %al
    jz done
    mov %al, %bl
    mov $0x3fd, %dx         # 16550 LSR: wait for THRE
wait:
    in %dx, %al
    test $0x20, %al
    jz wait
    mov $0x3f8, %dx
    mov %bl, %al
    out %al, %dx
    jmp next
done:
    {finish}
msg: .asciz "Hello from a boot sector\\n"
.org 510
.word 0xaa55
"""
DEBUG_EXIT_5 = "mov $5, %al\nout %al, $0xf4"
I8042_RESET = "mov $0xfe, %al\nout %al, $0x64\nhlt"


def boot_sector(tmp_path, finish):
    path = tmp_path / "guest.img"
    path.write_bytes(assemble(HELLO_SECTOR.format(finish=finish), 0x7C00))
    return path


@pytest.mark.parametrize("finish, status", [(DEBUG_EXIT_5, 11), (I8042_RESET, 0)])
@runs_guests
def test_flat_guest_greets_and_its_exit_status_is_ours(tmp_path, finish, status):
    done = x86vm("run", boot_sector(tmp_path, finish))
    assert (done.returncode, done.stdout, done.stderr) == (
        status, "Hello from a boot sector\n", "")


@runs_guests
def test_serial_to_a_file_and_a_timeout(tmp_path):
    out = tmp_path / "serial.txt"
    done = x86vm("run", boot_sector(tmp_path, "1: jmp 1b"), "--serial", f"file:{out}",
                 "--timeout", "0.5")
    assert done.returncode == 124
    assert done.stdout == "" and out.read_text() == "Hello from a boot sector\n"
    assert done.stderr == "x86vm: guest stopped: timeout after 0.5 s\n"


def test_a_bad_image_is_one_line(tmp_path):
    path = tmp_path / "junk.bin"
    path.write_bytes(b"\x01" * 100)
    done = x86vm("run", path)
    assert done.returncode == 2 and done.stderr.startswith("x86vm: error: ")
    assert done.stderr.count("\n") == 1



@runs_guests
def test_main_job_command_boots_the_bundled_guest():
    done = x86vm("run")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.strip() != ""  # the greeting; its text belongs to the guest


def test_without_kvm_the_main_job_runs_on_the_python_cpu(tmp_path):
    """``--backend auto`` (the default) falls back to emu where no VM can be created: the
    same greeting, status 0, and one line saying which backend and why."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "X86VM_KVM_PATH": str(tmp_path / "no-kvm")}
    done = subprocess.run([sys.executable, "-m", "x86vm", "run"], env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0 and "Hello from the x86vm guest!" in done.stdout
    assert done.stderr.startswith("x86vm: using the emu backend (Python CPU): ")
    assert done.stderr.count("\n") == 1 and "no-kvm" in done.stderr
    forced = subprocess.run([sys.executable, "-m", "x86vm", "run", "--backend", "kvm"], env=env,
                            capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert forced.returncode == 2 and forced.stderr.startswith("x86vm: error: ")


@runs_guests
def test_ctrl_c_stops_a_spinning_guest_promptly(tmp_path):
    import select
    import signal
    import time

    image = boot_sector(tmp_path, "1: jmp 1b")  # greets, then spins without exits
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-m", "x86vm", "run", str(image)], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "the guest never greeted"
        assert proc.stdout.readline() == "Hello from a boot sector\n"
        time.sleep(0.2)  # now inside KVM_RUN
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 130 and err == ""
    assert time.monotonic() - sent < 3


@runs_guests
@pytest.mark.parametrize("args, message", [
    (["--debug-exit-port", "0x80"], "overlaps"),
    (["--serial", "pipe:/tmp/x"], "serial 'pipe:/tmp/x'"),
    (["--backend", "qemu"], "unknown backend 'qemu'"),
])
def test_bad_wiring_is_one_line(tmp_path, args, message):
    done = x86vm("run", boot_sector(tmp_path, DEBUG_EXIT_5), *args)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("x86vm: error: ") and message in done.stderr
    assert done.stderr.count("\n") == 1


@runs_guests
def test_multiboot_kernel_written_for_qemu_runs_unchanged_through_the_cli(guest_dir, request):  # noqa: F811
    """The tutorial-style kernel (its own header and linker script, written for QEMU -kernel)
    run as ``x86vm run tutorial.elf`` gives QEMU's serial output and exit status; x86vm hands
    it QEMU's Multiboot command line ("<kernel file> <append>")."""
    expected, oracle = expectation("tutorial", guest_dir)
    request.node.user_properties.append(("oracle", oracle))
    done = subprocess.run(
        [sys.executable, "-m", "x86vm", "run", "tutorial.elf", "--memory", "128M",
         "--timeout", "30"], cwd=guest_dir, env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert (done.returncode, done.stdout) == (expected["status"], expected["serial"]), \
        f"expected from {oracle}; stderr: {done.stderr}"


def test_stats_count_what_the_run_did():
    """--stats: the exits equal the buses' dispatch counts; on emu two runs of one guest
    retire the same number of instructions (guest time follows them)."""
    runs = [x86vm("run", "--backend", "emu", "--stats") for _ in range(2)]
    figures = []
    for done in runs:
        assert done.returncode == 0
        stats = dict(line.split(": ", 2)[2].rsplit(" ", 1) for line in done.stderr.splitlines()
                     if line.startswith("x86vm: stats: "))
        # every exit of this guest is one port access (unclaimed ones are among the reads/writes)
        assert int(stats["exits"]) == sum(int(stats[f"{bus}.{kind}"]) for bus in ("pio", "mmio")
                                          for kind in ("reads", "writes"))
        figures.append((stats["instructions"], stats["exits"]))
    assert figures[0] == figures[1] and int(figures[0][0]) > 0
