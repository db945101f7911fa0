"""``x86vm run``: boot a guest image on the virtual machine (docs/machine-api.md "CLI").

The process exit status mirrors the guest's: QEMU isa-debug-exit semantics
(``(value << 1) | 1``), 0 on a clean shutdown (reset, triple fault, final ``hlt``),
124 on ``--timeout``, 126 when the vCPU could not continue.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from importlib import resources

from x86vm.cli import CliError
from x86vm.cli.inputs import read_regular
from x86vm.cpu.cpuid import CpuFeatures
from x86vm.cpu.system import check_vendor
from x86vm.devices.console import ConsoleError, open_console
from x86vm.devices.pc import attach_pc_devices
from x86vm.devices.serial_script import ScriptedInput
from x86vm.devices.virtio import (
    DiskImageError,
    DriveSpecError,
    attach_virtio,
    cmdline_fragment,
    parse_drive,
)
from x86vm.gdb import stub as gdb_stub
from x86vm.machine.backend import RunResult
from x86vm.machine.boot import BootError, detect_format, load_image
from x86vm.machine.boot.rom import MAX_ROM, reset_state, rom_regions
from x86vm.machine.bus import BusError
from x86vm.machine.runloop import STATUS_INTERNAL_ERROR, STATUS_TIMEOUT
from x86vm.machine.vm import Machine, MachineError
from x86vm.trace import session as trace_session
from x86vm.trace.oops import report_for_run

LOADERS = ("flat", "multiboot", "linux", "pvh", "rom")
BUNDLED_GUEST = "hello.bin"
DEFAULT_MEMORY = "128M"
MIN_MEMORY = 1 << 20
KVM_PATH_ENV = "X86VM_KVM_PATH"
MAX_SERIAL_INPUT = 16 << 20
MAX_TIMEOUT = 365 * 24 * 3600  # a year: far below threading.TIMEOUT_MAX (~292 years)
_SIZE_UNITS = {"": 1 << 20, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"(\d+)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)


def parse_memory_size(text: str) -> int:
    """``128M``, ``1G``, ``512k``, ``2GiB``; a bare number is MiB (as QEMU's ``-m``)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise CliError(f"bad memory size {text!r}: expected a number with an optional "
                       "K/M/G/T suffix, like 128M")
    size = int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if size < MIN_MEMORY or size % 4096:
        raise CliError(f"bad memory size {text!r}: at least 1M, in whole 4 KiB pages")
    return size


def parse_port(text: str) -> int:
    try:
        port = int(text, 0)
    except ValueError:
        port = -1
    if not 0 <= port <= 0xFFFF:
        raise CliError(f"bad --debug-exit-port {text!r}: expected an I/O port 0-0xffff")
    return port


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run", help="boot a guest image (default: the bundled hello guest)",
        description="Boot IMAGE on the virtual machine; its serial console is wired to the "
                    "host and its debug-exit port sets the exit status.")
    p.add_argument("image", nargs="?", metavar="IMAGE",
                   help="kernel or flat binary (default: the bundled hello guest)")
    p.add_argument("--loader", metavar="|".join(LOADERS),
                   help="boot protocol (default: detected from the image)")
    p.add_argument("--bios", metavar="ROM",
                   help="start from the reset vector in this firmware ROM, mapped to end at "
                        "4 GiB with its last 128 KiB also below 1 MiB (the same as "
                        "--loader rom ROM)")
    p.add_argument("-m", "--memory", default=DEFAULT_MEMORY, metavar="SIZE",
                   help=f"guest RAM, e.g. 128M or 1G (default {DEFAULT_MEMORY})")
    p.add_argument("--cmdline", default="", metavar="S", help="kernel command line")
    p.add_argument("--initrd", metavar="FILE", help="initial ramdisk / first module")
    p.add_argument("--serial", default="stdio", metavar="SPEC",
                   help="COM1: stdio, file:PATH, tcp:HOST:PORT[,server] or none "
                        "(default stdio); file:PATH is truncated (or created) when the guest "
                        "starts, never before: a run that fails to start leaves it as it was. "
                        "Output the host cannot take is dropped, with a note at the end")
    p.add_argument("--serial-input", metavar="FILE",
                   help="type FILE into COM1 instead of the terminal's keys: one line at a "
                        "time, each once the guest waits for input (its UART receive "
                        "interrupt on, the previous line read, no serial output for 50 ms of "
                        "guest time); then the line stays idle. E.g. a shell session ending in "
                        "'poweroff -f'")
    p.add_argument("--backend", default="auto", metavar="auto|kvm|emu",
                   help="vCPU backend (default auto: KVM where a VM can be created, else the "
                        f"Python CPU; ${KVM_PATH_ENV} names another KVM device)")
    p.add_argument("--irqchip", choices=("kernel", "user"), default=None,
                   help="interrupt controllers and PIT: KVM's in-kernel models (kvm's "
                        "default) or x86vm's Python chipset (emu always; KVM injects with "
                        "KVM_INTERRUPT)")
    p.add_argument("--cpu-vendor", metavar="GenuineIntel|AuthenticAMD", default=None,
                   help="the vCPU's CPUID vendor and the vendor-specific behaviour that goes "
                        "with it, e.g. SYSCALL outside 64-bit mode (default: the backend's)")
    p.add_argument("--cpu-features", metavar="+svm,-rdtscp,...", default=None,
                   help="emu: add (+) or remove (-) optional CPU features, QEMU's -cpu "
                        "property names: svm (AMD SVM), rdtscp, xsave, invpcid, skinit, "
                        "rdpru, npt")
    p.add_argument("--testdev", action="store_true",
                   help="add QEMU's pc-testdev (ports 0xe0-0xeb, IRQ lines at 0x2000; what "
                        "kvm-unit-tests expect)")
    p.add_argument("--timeout", metavar="SECONDS",
                   help="stop the guest after this long (exit status 124)")
    p.add_argument("--debug-exit-port", default="0xf4", metavar="PORT",
                   help="isa-debug-exit I/O port (default 0xf4)")
    p.add_argument("--drive", action="append", default=[], metavar="SPEC",
                   help="virtio-blk disk: file=PATH[,format=raw][,readonly=on]"
                        "[,cache=writeback|none|unsafe] (repeatable)")
    p.add_argument("--virtio-rng", action="store_true",
                   help="add a virtio-rng device fed from the host's os.urandom")
    p.add_argument("--stats", action="store_true",
                   help="after the run, print on stderr: time, exits by kind, and on emu "
                        "instructions retired and #UDs")
    trace_session.add_options(p)
    gdb_stub.add_options(p)
    p.set_defaults(func=run)


def open_machine(backend: str, memory_size: int, irqchip: str | None,
                 rom: list[tuple[int, bytes]] | None = None,
                 cpu_vendor: str | None = None, cpu_features: str | None = None) -> Machine:
    """The machine on ``backend``; ``auto`` is KVM where a VM can be created, else emu —
    and then one line on stderr says why KVM was not used."""
    rom_option = {"rom": rom} if rom else {}
    kvm_path = os.environ.get(KVM_PATH_ENV)
    kvm = {"kvm_path": kvm_path} if kvm_path else {}
    if backend not in ("auto", "kvm", "emu"):
        raise CliError(f"unknown backend {backend!r}: choose auto, kvm or emu")
    vendor = {} if cpu_vendor is None else {"cpu_vendor": cpu_vendor}
    if cpu_vendor is not None:
        try:
            check_vendor(cpu_vendor)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    if cpu_features:
        try:
            CpuFeatures.parse(cpu_features)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        if backend == "kvm":
            raise CliError("--cpu-features: only the emu backend models them")
        vendor["cpu_features"] = cpu_features
        backend = "emu"
    if backend in ("auto", "kvm"):
        try:
            return Machine(memory_size=memory_size, backend="kvm", **rom_option,
                           **kvm, **irqchip_options("kvm", irqchip), **vendor)
        except MachineError as exc:
            if backend == "kvm":
                raise CliError(str(exc)) from None
            print(f"x86vm: using the emu backend (Python CPU): {exc}", file=sys.stderr)
    try:
        return Machine(memory_size=memory_size, backend="emu", **rom_option,
                       **irqchip_options("emu", irqchip), **vendor)
    except MachineError as exc:
        raise CliError(str(exc)) from None


def run_stats(machine: Machine, result: RunResult, seconds: float,
              chipset: object | None = None) -> str:
    """``--stats``: one line per figure, ``x86vm: stats: NAME VALUE``; the Python
    chipset's interrupt counts when the board built one."""
    lines = [f"backend {machine.backend.name}", f"seconds {seconds:.3f}",
             f"exits {result.exits}"]
    for bus, kinds in machine.exit_stats().items():
        lines += [f"{bus}.{kind} {count}" for kind, count in sorted(kinds.items())]
    backend_stats = getattr(machine.backend, "stats", None)  # the emu backend's counters
    if backend_stats is not None:
        lines += [f"{name} {value}" for name, value in backend_stats().items()]
    if chipset is not None:
        lines += [f"{name} {value}" for name, value in chipset.interrupt_stats().items()]
    return "\n".join(f"x86vm: stats: {line}" for line in lines)


def irqchip_options(backend: str, irqchip: str | None) -> dict[str, object]:
    """The backend options ``--irqchip`` stands for (KVM's ``irqchip`` flag)."""
    if irqchip is None:
        return {}
    if backend == "kvm":
        return {"irqchip": irqchip == "kernel"}
    if irqchip == "kernel":
        raise CliError(f"--irqchip kernel: the {backend} backend has no in-kernel irqchip")
    return {}


def parse_timeout(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise CliError(f"bad --timeout {text!r}: expected a positive number of seconds")
    if value > MAX_TIMEOUT:
        raise CliError(f"bad --timeout {text!r}: at most {MAX_TIMEOUT:.0f} seconds")
    return value


def parse_cmdline(text: str) -> str:
    """The command line as given; bytes that are not UTF-8 (argv decoded with
    surrogateescape) cannot be handed on faithfully, so they are refused in one line."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CliError(f"--cmdline is not valid UTF-8 (byte {exc.start})") from None
    return text


def _read(path: str, what: str, limit: int) -> bytes:
    """A regular file of at most ``limit`` bytes (the guest RAM): see cli/inputs.py."""
    return read_regular(path, what, limit)


def _rom_option(args: argparse.Namespace) -> bytes | None:
    """The firmware ROM of ``--bios ROM`` or ``--loader rom IMAGE`` (None without)."""
    if args.bios is None and args.loader != "rom":
        return None
    if args.bios is not None and args.image:
        raise CliError("--bios starts the machine from its ROM: give no IMAGE as well")
    path = args.bios if args.bios is not None else args.image
    if path is None:
        raise CliError("--loader rom needs the ROM image as IMAGE")
    if args.cmdline or args.initrd:
        raise CliError("a ROM boots itself: --cmdline and --initrd do not apply")
    return _read(path, "ROM", MAX_ROM)


def _bundled_guest() -> bytes:
    """``x86vm/guests/hello.bin``, shipped as package data."""
    try:
        return resources.files("x86vm").joinpath("guests", BUNDLED_GUEST).read_bytes()
    except OSError:
        raise CliError("no IMAGE given and the bundled guest x86vm/guests/hello.bin is not "
                       "installed") from None


def run(args: argparse.Namespace) -> int:
    if args.loader is not None and args.loader not in LOADERS:
        raise CliError(f"unknown loader {args.loader!r}: choose one of {', '.join(LOADERS)}")
    memory_size = parse_memory_size(args.memory)
    exit_port = parse_port(args.debug_exit_port)
    timeout = parse_timeout(args.timeout)
    rom = _rom_option(args)
    if rom is not None:
        image = rom
    else:
        image = _read(args.image, "image", memory_size) if args.image else _bundled_guest()
    initrd = _read(args.initrd, "initrd", memory_size) if args.initrd else None
    script = _read(args.serial_input, "serial input", MAX_SERIAL_INPUT) \
        if args.serial_input else None
    try:
        drives = [parse_drive(text) for text in args.drive]
    except DriveSpecError as exc:
        raise CliError(str(exc)) from None

    try:
        fmt = "rom" if rom is not None else args.loader or detect_format(image)
        rom_map = rom_regions(rom) if rom is not None else None
    except BootError as exc:
        raise CliError(str(exc)) from None
    cmdline = parse_cmdline(args.cmdline)
    if fmt == "multiboot" and args.image:
        # What QEMU's -kernel and GRUB hand a Multiboot kernel: "<kernel file> <arguments>".
        cmdline = f"{args.image} {cmdline}" if cmdline else args.image

    machine = open_machine(args.backend, memory_size, args.irqchip, rom_map, args.cpu_vendor,
                           args.cpu_features)
    started = time.monotonic()
    stats = None
    console = board = tracer = stub = result = None
    virtio = []
    try:
        try:
            console = open_console(args.serial, read_stdin=script is None)
        except ConsoleError as exc:
            raise CliError(str(exc)) from None
        try:
            board = attach_pc_devices(machine, console=console, debug_exit_port=exit_port,
                                      testdev=args.testdev, firmware_handoff=rom is None)
        except BusError as exc:  # e.g. --debug-exit-port on a port a PC device owns
            raise CliError(str(exc)) from None
        if script is not None:
            ScriptedInput(board.uart, script, machine.at, machine.clock_ns).start()
        if drives or args.virtio_rng:
            try:
                # the interrupt inputs are the Python chipset's when the board built one
                # (emu, --irqchip user), else the machine's (KVM's in-kernel irqchip)
                lines = board.chipset.irq_line if board.chipset is not None else None
                virtio = attach_virtio(machine, drives, rng=args.virtio_rng, irq_line=lines)
            except DiskImageError as exc:  # missing, locked, odd-sized: before the guest runs
                raise CliError(str(exc)) from None
            # Linux finds virtio-mmio devices on its command line (the loaders append it)
            board.add_cmdline(cmdline_fragment(virtio))
        try:  # after the board: it may swap the backend's run (KVM's user irqchip)
            stub = gdb_stub.start(args, machine)
            tracer = trace_session.start(args, stub.inner if stub else machine.backend,
                                         machine.backend)
        except (ValueError, OSError) as exc:  # TraceError is a ValueError
            raise CliError(str(exc)) from None
        if stub is not None:
            stub.tracer = tracer
        trace_session.attach_board(tracer, board)
        try:
            entry = reset_state() if rom is not None else load_image(
                machine.memory, image, fmt, cmdline=cmdline, initrd=initrd,
                **board.boot_options())
        except BootError as exc:
            raise CliError(str(exc)) from None
        try:
            console.open_output()  # only now: a failed load above leaves the file alone
        except ConsoleError as exc:
            raise CliError(str(exc)) from None
        try:
            result = machine.run(entry, timeout=timeout)
        except MachineError as exc:
            raise CliError(str(exc)) from None
        crash = report_for_run(machine.backend, machine.memory, result)  # before close()
        stats = run_stats(machine, result, time.monotonic() - started,
                          board.chipset) if args.stats else None
        trace_session.finish(tracer, args)
    finally:
        if stub is not None:
            stub.finish(result.status if result is not None else 0)
        if board is not None:
            board.close()
        elif console is not None:
            console.close()
        for device in virtio:
            device.transport.close()
        machine.close()
    problem = console.problem()
    if problem is not None:
        _say(f"x86vm: {problem}")
    if result.status in (STATUS_TIMEOUT, STATUS_INTERNAL_ERROR):
        _say(f"x86vm: guest stopped: {result.reason}")
    if crash is not None:
        _say(crash.rstrip("\n"))
    if stats is not None:
        _say(stats)
    for device in virtio:  # a misbehaving guest driver is counted, and shown here
        if device.transport.errors:
            counts = ", ".join(f"{k}={v}" for k, v in sorted(device.transport.errors.items()))
            _say(f"x86vm: {device.device.name} at {device.base:#x}: guest driver errors: "
                 f"{counts}")
    return result.status


def _say(text: str) -> None:
    """A line for the user on stderr, after what the guest wrote; nothing when stderr is
    closed or broken (the run's status still tells)."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except (OSError, ValueError):
        pass
    if sys.stderr is None:
        return
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
