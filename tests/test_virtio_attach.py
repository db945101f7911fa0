"""Placing virtio-mmio devices (windows, IRQs, the Linux command line) and ``--drive``."""

from __future__ import annotations

import pytest

from virtio_driver import Driver, new_memory
from x86vm.devices.virtio import (
    DiskImageError,
    DriveSpec,
    DriveSpecError,
    VirtioBlock,
    VirtioRng,
    attach_virtio,
    cmdline_fragment,
    parse_drive,
)
from x86vm.devices.virtio import mmio as R
from x86vm.machine.irq import NullIrqLine
from x86vm.machine.memory import GuestMemoryError


class FakeMachine:
    def __init__(self):
        self.memory = new_memory()
        self.lines: dict[int, NullIrqLine] = {}

    def irq_line(self, irq):
        return self.lines.setdefault(irq, NullIrqLine())


@pytest.mark.parametrize("text,spec", [
    ("file=a.img", DriveSpec("a.img")),
    ("a.img", DriveSpec("a.img")),
    ("file=a.img,format=raw,readonly=on,cache=none", DriveSpec("a.img", "raw", True, "none")),
    ("file=a,,b.img,cache=unsafe", DriveSpec("a,b.img", cache="unsafe")),
    ("file=x,readonly=off", DriveSpec("x")),
])
def test_parse_drive(text, spec):
    assert parse_drive(text) == spec


@pytest.mark.parametrize("text,message", [
    ("format=raw", "file=PATH is required"),
    ("file=a,format=qcow2", "only raw"),
    ("file=a,cache=directsync", "cache=directsync"),
    ("file=a,readonly=maybe", "not on/off"),
    ("file=a,if=virtio", "unknown option"),
    ("file=a,file=b", "given twice"),
    ("file=a,bogus", "not KEY=VALUE"),
])
def test_parse_drive_errors(text, message):
    with pytest.raises(DriveSpecError, match=message):
        parse_drive(text)


def test_attach_places_each_device(tmp_path):
    disks = []
    for name in ("a.img", "b.img"):
        (tmp_path / name).write_bytes(bytes(4096))
        disks.append(DriveSpec(str(tmp_path / name)))
    m = FakeMachine()
    attached = attach_virtio(m, disks, rng=True)
    try:
        assert [type(a.device) for a in attached] == [VirtioBlock, VirtioBlock, VirtioRng]
        assert [a.base for a in attached] == [0xD0000000, 0xD0000200, 0xD0000400]
        assert [a.irq for a in attached] == [5, 9, 10]
        assert cmdline_fragment(attached) == (
            "virtio_mmio.device=0x200@0xd0000000:5 virtio_mmio.device=0x200@0xd0000200:9 "
            "virtio_mmio.device=0x200@0xd0000400:10")
        for a, device_id in zip(attached, (2, 2, 4), strict=True):
            drv = Driver(m.memory, a.base)
            assert drv.read(R.MAGIC) == R.MAGIC_VALUE and drv.read(R.DEVICE_ID) == device_id
        # the interrupt of the rng device reaches its own line
        drv = Driver(m.memory, attached[2].base)
        q = drv.start()
        q.add([(drv.heap.alloc(16), 16, True)])
        q.kick()
        assert m.lines[10].level and not m.lines[5].level
    finally:
        for a in attached:
            a.transport.close()


def test_attach_opens_every_drive_before_registering(tmp_path):
    (tmp_path / "ok.img").write_bytes(bytes(512))
    m = FakeMachine()
    with pytest.raises(DiskImageError, match="missing.img: cannot open"):
        attach_virtio(m, [DriveSpec(str(tmp_path / "ok.img")),
                          DriveSpec(str(tmp_path / "missing.img"))])
    assert m.memory.mmio.mappings == ()
    VirtioBlock.open(DriveSpec(str(tmp_path / "ok.img"))).close()  # its lock was released


def test_attach_refuses_a_window_over_ram():
    m = FakeMachine()
    with pytest.raises(GuestMemoryError):
        attach_virtio(m, [], base=0x1000)


def test_attach_failure_releases_the_images(tmp_path):
    (tmp_path / "ok.img").write_bytes(bytes(512))
    m = FakeMachine()
    with pytest.raises(GuestMemoryError):
        attach_virtio(m, [DriveSpec(str(tmp_path / "ok.img"))], base=0x1000)
    VirtioBlock.open(DriveSpec(str(tmp_path / "ok.img"))).close()


def test_cli_missing_drive_is_one_line_before_the_guest_runs(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path
    src = Path(__file__).resolve().parents[1] / "src"
    done = subprocess.run(
        [sys.executable, "-m", "x86vm", "run", "--drive", f"file={tmp_path}/missing.img"],
        env={**os.environ, "PYTHONPATH": str(src)}, capture_output=True, text=True,
        timeout=60, stdin=subprocess.DEVNULL)
    if "kvm" in done.stderr.lower() and "missing.img" not in done.stderr:
        pytest.skip(f"no machine here: {done.stderr.strip()}")
    assert done.returncode == 2
    assert done.stderr == (f"x86vm: error: drive {tmp_path}/missing.img: cannot open: "
                           "No such file or directory\n")
    assert done.stdout == ""  # the guest never ran


@pytest.mark.kvm
def test_cli_reports_guest_driver_errors(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from support.virtio_guest import flat_gdt, unreal_mode
    from test_kvm_support import assemble
    guest = tmp_path / "kick.bin"  # unreal mode, then two kicks before DRIVER_OK
    guest.write_bytes(assemble(f"""
        xor %ax, %ax
        mov %ax, %ds
{unreal_mode('fs')}
    2:  mov $0xd0000000, %ebx
        movl $0, %fs:0x50(%ebx)
        movl $0, %fs:0x50(%ebx)
        mov $4, %al
        out %al, $0xf4
{flat_gdt()}
    """, 0x7C00))
    image = tmp_path / "d.img"
    image.write_bytes(bytes(4096))
    src = Path(__file__).resolve().parents[1] / "src"
    done = subprocess.run(
        [sys.executable, "-m", "x86vm", "run", str(guest), "--loader", "flat",
         "--drive", f"file={image}"], env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 9, done.stderr
    assert done.stderr == ("x86vm: virtio-blk at 0xd0000000: guest driver errors: "
                           "notify_before_driver_ok=2\n")


def test_attach_takes_the_interrupt_inputs_it_is_given(tmp_path):
    m = FakeMachine()
    lines: dict[int, NullIrqLine] = {}
    attached = attach_virtio(m, [], rng=True,
                             irq_line=lambda n: lines.setdefault(n, NullIrqLine()))
    drv = Driver(m.memory, attached[0].base)
    q = drv.start()
    q.add([(drv.heap.alloc(16), 16, True)])
    q.kick()
    assert lines[5].level and m.lines == {}
