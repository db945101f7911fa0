"""The bundled guest (x86vm/guests/hello.bin) is what its source builds to, byte for byte."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

import x86vm.guests
from x86vm.guests import bundled_hello
from x86vm.machine.boot import detect_format

SOURCE = Path(x86vm.guests.__file__).with_name("hello.S")


def documented_build_commands() -> list[list[str]]:
    """The rebuild commands exactly as hello.S's header comment gives them."""
    header = SOURCE.read_text().split("*/", 1)[0]
    return [line.split() for line in re.findall(r"^ \*   (\S.*)$", header, re.M)]


@pytest.mark.oracle("gcc", "binutils")
def test_hello_bin_rebuilds_byte_for_byte(tmp_path):
    shutil.copy(SOURCE, tmp_path / "hello.S")
    commands = documented_build_commands()
    assert [c[0] for c in commands] == ["gcc", "ld"]
    for cmd in commands:
        subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)
    assert (tmp_path / "hello.bin").read_bytes() == bundled_hello()


def test_hello_bin_is_a_boot_sector():
    data = bundled_hello()
    assert len(data) == 512 and data[510:] == b"\x55\xaa"
    assert detect_format(data) == "flat"
    assert b"Hello from the x86vm guest!\r\n" in data
