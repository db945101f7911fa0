"""The x86vm Linux guest (scripts/build-linux-guest, docs/linux-guest.md).

The boot tests are ``slow`` and use the kernel and initramfs cached by the build
script; they skip, saying how to build them, when the cache is empty.  QEMU TCG is
the oracle: the same images must reach the same /init marker under ``x86vm run``.

    scripts/build-linux-guest
    python3 -m pytest -m slow tests/test_linux_guest.py
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from support.oracles import require

REPO = Path(__file__).resolve().parent.parent
FRAGMENT = REPO / "scripts" / "linux-guest.config"
BUILD_SCRIPT = REPO / "scripts" / "build-linux-guest"
CACHE = Path(
    os.environ.get("X86VM_LINUX_CACHE")
    or os.environ.get("X86VM_LINUX_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "x86vm" / "linux"
)
MARKER = "x86vm-linux: init reached"
POWER_OFF_LINE = "reboot: Power down"
RESET_LINE = "reboot: Restarting system"
# Kernel command line for unattended boots: /init prints the marker, then powers off.
UNATTENDED_CMDLINE = "console=ttyS0 x86vm.poweroff=1 panic=-1"
QEMU_TIMEOUT = 120.0
# A software-emulated /dev/kvm runs ~2M guest instructions/s: allow it a long time.
X86VM_TIMEOUT = float(os.environ.get("X86VM_LINUX_TIMEOUT", "1800"))

# What issue 3 item 8 asks of the kernel configuration.
REQUIRED_OPTIONS = {
    "CONFIG_64BIT": "y",
    "CONFIG_PRINTK": "y",
    "CONFIG_SERIAL_8250": "y",
    "CONFIG_SERIAL_8250_CONSOLE": "y",
    "CONFIG_BLK_DEV_INITRD": "y",
    "CONFIG_DEVTMPFS": "y",
    "CONFIG_DEVTMPFS_MOUNT": "y",
    "CONFIG_PVH": "y",
    "CONFIG_VIRTIO_MMIO": "y",
    "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES": "y",
    "CONFIG_VIRTIO_BLK": "y",
    "CONFIG_BINFMT_ELF": "y",
    "CONFIG_BINFMT_SCRIPT": "y",
    "CONFIG_PROC_FS": "y",
    "CONFIG_SYSFS": "y",
    # the power-off path: ACPI S5 through the FADT's PM1a_CNT (issue 11, item 6)
    "CONFIG_ACPI": "y",
    "CONFIG_PCI": "y",  # ACPICA loads no DSDT without it (scripts/linux-guest.config)
    # issue 12, item 5: a filesystem busybox can make and the host can read; virtio-rng
    "CONFIG_EXT2_FS": "y",
    "CONFIG_HW_RANDOM": "y",
    "CONFIG_HW_RANDOM_VIRTIO": "y",
}

_SET = re.compile(r"^(CONFIG_[A-Z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Z0-9_]+) is not set$")


def parse_config(text: str) -> dict[str, str]:
    """Kconfig ``.config`` syntax: ``CONFIG_X=v`` or ``# CONFIG_X is not set`` (= "n")."""
    options: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if match := _SET.match(line):
            options[match[1]] = match[2]
        elif match := _UNSET.match(line):
            options[match[1]] = "n"
        elif line.strip() and not line.startswith("#"):
            raise ValueError(f"line {number}: not a Kconfig line: {line!r}")
    return options


def test_fragment_asks_for_everything_the_guest_needs():
    fragment = parse_config(FRAGMENT.read_text())
    missing = {k: v for k, v in REQUIRED_OPTIONS.items() if fragment.get(k) != v}
    assert not missing, f"{FRAGMENT.name} lacks {missing}"


def test_build_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(BUILD_SCRIPT)], check=True)


def cached(name: str) -> Path:
    require("linux-guest")
    return CACHE / name


def test_cached_config_honours_fragment():
    """The built kernel's .config has every option the fragment sets."""
    config = parse_config(cached("config").read_text())
    fragment = parse_config(FRAGMENT.read_text())
    differ = {k: (v, config.get(k, "n")) for k, v in fragment.items() if config.get(k, "n") != v}
    assert not differ, (f"wanted vs built: {differ} (a cache built from an older fragment: "
                        "rerun scripts/build-linux-guest, under the heavy lock)")


def boot(
    command: list[str],
    timeout: float,
    env: dict[str, str] | None = None,
    marker: str = MARKER,
    typed: tuple[str, bytes] | None = None,
):
    """Run a VM to completion or ``timeout``; return (status, console output, seconds to
    the marker or NaN).  A reader thread timestamps lines so a silent hang still times out.
    ``typed = (trigger, keys)`` sends ``keys`` to the console once a line has ``trigger``."""
    start = time.monotonic()
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE if typed else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    lines: list[tuple[float, str]] = []

    def read() -> None:
        assert process.stdout is not None
        pending = typed
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace")
            lines.append((time.monotonic() - start, line))
            if pending and pending[0] in line and process.stdin is not None:
                process.stdin.write(pending[1])
                process.stdin.flush()
                pending = None

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        status = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        status = process.wait()
        lines.append((timeout, f"\n[killed after {timeout:.0f}s]\n"))
    reader.join(timeout=5)
    to_marker = next((at for at, line in lines if marker in line), float("nan"))
    return status, "".join(line for _, line in lines), to_marker


def assert_reached_marker(status: int, output: str) -> None:
    tail = output[-3000:]
    assert MARKER in output, f"no '{MARKER}' on the console; last output:\n{tail}"
    assert output.find(POWER_OFF_LINE) > output.index(MARKER), \
        f"no power-off after the marker:\n{tail}"
    assert status == 0, f"exit status {status}; last output:\n{tail}"


QEMU_CASES = {
    "bzImage+cpio.gz": ("bzImage", "initramfs.cpio.gz"),
    "bzImage+cpio": ("bzImage", "initramfs.cpio"),
    "pvh-vmlinux+cpio.gz": ("vmlinux", "initramfs.cpio.gz"),
}


def qemu_command(kernel, initrd, cmdline: str) -> list[str]:
    """QEMU TCG booting ``kernel`` with ``initrd`` (skips when QEMU is not installed)."""
    require("qemu")
    return [shutil.which("qemu-system-x86_64"), "-nographic", "-no-reboot", "-m", "128M",
            "-kernel", str(kernel), "-initrd", str(initrd), "-append", cmdline]


@pytest.mark.slow
@pytest.mark.parametrize("case", QEMU_CASES)
def test_qemu_boots_to_marker(case):
    """Oracle: QEMU TCG boots the cached images (vmlinux through its PVH note)."""
    kernel, initrd = (cached(name) for name in QEMU_CASES[case])
    status, output, seconds = boot(qemu_command(kernel, initrd, UNATTENDED_CMDLINE),
                                   QEMU_TIMEOUT)
    assert_reached_marker(status, output)
    print(f"{case}: marker after {seconds:.2f}s under QEMU TCG")


SHELL_PROMPT_LINE = "x86vm-linux: starting shell"
# Arithmetic expansion: the answer appears only if busybox sh ran the line (its echo does not).
SHELL_INPUT = b"echo shell-says $((6*7)); tty\nreboot -f\n"  # QEMU -no-reboot exits on reset


@pytest.mark.slow
def test_qemu_interactive_shell_runs_commands():
    """Without x86vm.poweroff=1, /init leaves a shell on ttyS0 that reads the console."""
    kernel, initrd = cached("bzImage"), cached("initramfs.cpio.gz")
    status, output, _ = boot(
        qemu_command(kernel, initrd, "console=ttyS0 panic=-1"),
        QEMU_TIMEOUT,
        typed=(SHELL_PROMPT_LINE, SHELL_INPUT),
    )
    tail = output[-3000:]
    assert "shell-says 42" in output, f"the shell did not run the command:\n{tail}"
    assert "/dev/ttyS0" in output, f"the shell has no controlling tty on ttyS0:\n{tail}"
    assert status == 0 and RESET_LINE in output, f"status {status}:\n{tail}"


# This machine's /dev/kvm is kvm_pvm, a software hypervisor (no VT-x/AMD-V): it runs the
# guest kernel through KVM's instruction emulator, which lacks XSAVE/XRSTOR, CLAC/STAC and
# POPCNT, while CPUID still reports them (so KVM_SET_CPUID2 cannot hide them).  The kernel
# is told not to use them; see docs/linux-guest.md "x86vm on this machine".
SOFTWARE_KVM_MODULE = Path("/sys/module/kvm_pvm")
SOFTWARE_KVM_CMDLINE = "noxsave clearcpuid=308,151"  # 308 = X86_FEATURE_SMAP, 151 = POPCNT
KERNEL_REACHED_INIT = "Run /init as init process"


@pytest.fixture
def explicitly_selected(request):
    """A Linux boot under x86vm takes minutes on a software KVM: the default suite must not
    wait for it (issue 3 item 8), so these run only when asked for with ``-m slow``."""
    if "slow" not in (request.config.option.markexpr or "") or "not slow" in (
        request.config.option.markexpr or ""
    ):
        pytest.skip("boots Linux under x86vm (minutes); select with -m slow")


def x86vm_run(kernel: Path, initrd: Path, cmdline: str, marker: str = MARKER):
    require("kvm")
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    command = [
        sys.executable,
        "-m",
        "x86vm",
        "run",
        str(kernel),
        "--initrd",
        str(initrd),
        "--cmdline",
        cmdline,
        "--timeout",
        str(X86VM_TIMEOUT),
    ]
    return boot(command, X86VM_TIMEOUT + 30, env, marker)


@pytest.mark.slow
@pytest.mark.kvm
def test_x86vm_run_boots_to_marker(explicitly_selected):
    """``x86vm run bzImage --initrd …`` reaches the marker, as QEMU does (hardware KVM)."""
    if SOFTWARE_KVM_MODULE.exists():
        pytest.skip(
            "kvm_pvm cannot run unmodified guest user space (the first syscall "
            "faults); see docs/linux-guest.md"
        )
    status, output, seconds = x86vm_run(
        cached("bzImage"), cached("initramfs.cpio"), UNATTENDED_CMDLINE
    )
    assert_reached_marker(status, output)
    print(f"x86vm run: marker after {seconds:.1f}s")


@pytest.mark.slow
@pytest.mark.kvm
def test_x86vm_run_reaches_init_on_software_kvm(explicitly_selected):
    """On kvm_pvm the kernel boots as far as starting /init (PVH entry, no decompression)."""
    if not SOFTWARE_KVM_MODULE.exists():
        pytest.skip("only for the kvm_pvm software hypervisor")
    status, output, seconds = x86vm_run(
        cached("vmlinux"),
        cached("initramfs.cpio"),
        f"{UNATTENDED_CMDLINE} {SOFTWARE_KVM_CMDLINE}",
        KERNEL_REACHED_INIT,
    )
    hint = ""
    # kvm_run.emulation_failure: flags 0x1, then insn_size in the low byte, 0xCC after it
    if re.search(r"emulation failure \(data 0x1 0x[0-9a-f]*cc[0-9a-f]{2} ", output):
        hint = " (the KVM backend must deliver int3 itself; docs/linux-guest.md 'Monitor fix')"
    assert KERNEL_REACHED_INIT in output, f"status {status}{hint}; last output:\n{output[-3000:]}"
    print(f"x86vm run on kvm_pvm: kernel started /init after {seconds:.1f}s wall")


# --- the Python CPU (issue 11, item 6): boot to the busybox prompt, a scripted shell session
# typed with --serial-input, power-off → status 0. QEMU TCG runs the same session as oracle.
SESSION = b"uname -a\ncat /proc/interrupts\necho hi > /tmp/f\ncat /tmp/f\npoweroff -f\n"
PROMPT = "/ # "
EMU_CMDLINE = "console=ttyS0 panic=-1"
EMU_TIMEOUT = float(os.environ.get("X86VM_LINUX_EMU_TIMEOUT", "900"))


def command_outputs(output: str, script: bytes = SESSION) -> dict[str, list[str]]:
    """For each typed command, the lines the shell printed after echoing it, up to the next
    prompt (the prompt's escape sequences and carriage returns removed)."""
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", output).replace("\r", "")
    found: dict[str, list[str]] = {}
    for command in script.decode().splitlines():
        at = text.find(PROMPT + command + "\n")
        if at < 0:
            continue
        rest = text[at + len(PROMPT) + len(command) + 1:]
        found[command] = rest.split(PROMPT, 1)[0].splitlines()
    return found


def assert_session_ran(status: int, output: str) -> dict[str, list[str]]:
    tail = output[-3000:]
    outputs = command_outputs(output)
    missing = [c for c in SESSION.decode().splitlines()[:-1] if c not in outputs]
    assert not missing, f"the shell never ran {missing}; last output:\n{tail}"
    assert outputs["cat /tmp/f"] == ["hi"], outputs["cat /tmp/f"]
    assert outputs["uname -a"] and outputs["uname -a"][0].startswith("Linux "), outputs
    assert POWER_OFF_LINE in output, f"no ACPI power-off:\n{tail}"
    assert status == 0, f"exit status {status}; last output:\n{tail}"
    return outputs


def qemu_session(kernel: Path, initrd: Path) -> tuple[int, str]:
    """QEMU TCG with SESSION typed one line per prompt (the oracle of the emu session)."""
    command = qemu_command(kernel, initrd, EMU_CMDLINE)
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    lines = iter(SESSION.splitlines(keepends=True))
    seen = b""
    killer = threading.Timer(QEMU_TIMEOUT, process.kill)
    killer.start()
    try:
        assert process.stdout is not None and process.stdin is not None
        while chunk := process.stdout.read1(4096):
            seen += chunk
            if seen.endswith(b"\x1b[6n") and (line := next(lines, None)) is not None:
                process.stdin.write(line)  # busybox asks for the cursor after each prompt
                process.stdin.flush()
        status = process.wait()
    finally:
        killer.cancel()
    return status, seen.decode("utf-8", "replace")


@pytest.mark.slow
def test_qemu_runs_the_scripted_session_and_powers_off():
    """Oracle: under QEMU TCG the session's commands run and poweroff -f exits 0 (ACPI S5)."""
    status, output = qemu_session(cached("bzImage"), cached("initramfs.cpio.gz"))
    outputs = assert_session_ran(status, output)
    assert any("IO-APIC" in line for line in outputs["cat /proc/interrupts"]), outputs


@pytest.mark.slow
def test_emu_boots_to_the_shell_runs_the_session_and_powers_off(explicitly_selected,
                                                                 tmp_path):
    """``x86vm run --backend emu --serial-input`` boots the bzImage to the busybox prompt,
    the shell runs the typed session, and ``poweroff -f`` (ACPI S5) ends the run with
    status 0; ``uname -a`` prints what it prints under QEMU TCG, and the interrupts come
    through the IOAPIC and the local APIC timer as there."""
    kernel, initrd = cached("bzImage"), cached("initramfs.cpio.gz")
    script = tmp_path / "session"
    script.write_bytes(SESSION)
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    command = [sys.executable, "-m", "x86vm", "run", "--backend", "emu", "--stats",
               "--serial-input", str(script), "--initrd", str(initrd),
               "--cmdline", EMU_CMDLINE, "--timeout", str(EMU_TIMEOUT), str(kernel)]
    status, output, seconds = boot(command, EMU_TIMEOUT + 30, env, PROMPT)
    outputs = assert_session_ran(status, output)
    interrupts = outputs["cat /proc/interrupts"]
    assert any("IO-APIC" in line for line in interrupts), interrupts
    assert any(line.lstrip().startswith("LOC:") for line in interrupts), interrupts
    if shutil.which("qemu-system-x86_64"):
        _, qemu_output = qemu_session(kernel, initrd)
        assert command_outputs(qemu_output)["uname -a"] == outputs["uname -a"]
    print(f"emu: prompt after {seconds:.0f}s wall")


# The default suite's share (~15 s): the PVH vmlinux on emu up to the FPU setup, which
# passes the firmware tables, the IOAPIC and local APIC switch, the timer check through the
# IOAPIC and the x87/FXSAVE probe; QEMU TCG prints the same landmark lines.
EARLY_LANDMARKS = (
    "ACPI: Using ACPI (MADT) for SMP configuration information",
    "APIC: Switch to symmetric I/O mode setup",
    "..TIMER: vector=0x30 apic1=0 pin1=2 apic2=-1 pin2=-1",
    "x86/fpu: ",  # FXSAVE (QEMU's qemu64) or XSAVE (x86vm): the FPU was found, either way
)
EARLY_STOP = EARLY_LANDMARKS[-1]


def landmarks(output: str) -> list[str]:
    return [mark for mark in EARLY_LANDMARKS if mark in output]


def test_emu_early_boot_reaches_the_apic_and_fpu_setup_as_qemu_does():
    from x86vm.devices.console import BufferConsole
    from x86vm.devices.pc import attach_pc_devices
    from x86vm.machine.boot import load_image
    from x86vm.machine.vm import Machine

    vmlinux, initrd = cached("vmlinux"), cached("initramfs.cpio")
    if "CONFIG_ACPI=y" not in cached("config").read_text().splitlines():
        pytest.skip("the cached kernel predates CONFIG_ACPI: rerun scripts/build-linux-guest")
    cmdline = "console=ttyS0 earlyprintk=serial panic=-1"

    class StopAtMark(BufferConsole):
        def write(self, data: bytes) -> None:
            super().write(data)
            if EARLY_STOP.encode() in self.output[-200:] and self.output.endswith(b"\n"):
                machine.request_stop(0, "landmark reached")

    console = StopAtMark()
    with Machine(memory_size=128 << 20, backend="emu") as machine:
        board = attach_pc_devices(machine, console)
        try:
            entry = load_image(machine.memory, vmlinux.read_bytes(), "pvh", cmdline=cmdline,
                               initrd=initrd.read_bytes(), **board.boot_options())
            result = machine.run(entry, timeout=120)
        finally:
            board.close()
    output = console.output.decode("utf-8", "replace")
    assert result.reason == "landmark reached", f"{result.reason}:\n{output[-3000:]}"
    assert landmarks(output) == list(EARLY_LANDMARKS), output[-3000:]
    assert "APIC disabled by BIOS" not in output and "MP-BIOS bug" not in output
    assert "no FPU found" not in output
    if shutil.which("qemu-system-x86_64"):
        qemu_output = qemu_until(qemu_command(vmlinux, initrd, cmdline), EARLY_STOP)
        assert landmarks(qemu_output) == list(EARLY_LANDMARKS), qemu_output[-3000:]


def qemu_until(command: list[str], text: str, timeout: float = 60.0) -> str:
    """QEMU's console output up to the first ``text`` (then QEMU is killed)."""
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    killer = threading.Timer(timeout, process.kill)
    killer.start()
    seen = b""
    try:
        assert process.stdout is not None
        while chunk := process.stdout.read1(4096):
            seen += chunk
            if text.encode() in seen[-len(chunk) - len(text):]:
                break
    finally:
        killer.cancel()
        process.kill()
        process.wait()
    return seen.decode("utf-8", "replace")
