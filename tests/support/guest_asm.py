"""Flat guest images from assembly text: GNU as and ld, run at test time."""

from __future__ import annotations

import functools
import subprocess
import tempfile
from pathlib import Path

from support.oracles import require


@functools.cache
def assemble_flat(source: str, base: int, bits: int = 16) -> bytes:
    """Assemble ``source`` (GNU as, AT&T; starts in ``.text`` in ``bits``-bit code) into a
    flat image linked to run at ``base`` (``ld --oformat binary``)."""
    require("binutils")
    code = {16: ".code16\n", 32: ".code32\n", 64: ".code64\n"}[bits]
    as_mode, ld_mode = ("--64", "elf_x86_64") if bits == 64 else ("--32", "elf_i386")
    with tempfile.TemporaryDirectory() as d:
        src, obj, out = Path(d, "g.s"), Path(d, "g.o"), Path(d, "g.bin")
        src.write_text(".text\n" + code + source + "\n")
        done = subprocess.run(["as", as_mode, "-o", str(obj), str(src)],
                              capture_output=True, text=True)
        if done.returncode:
            raise AssertionError(f"test guest does not assemble:\n{done.stderr}")
        subprocess.run(["ld", "-m", ld_mode, f"-Ttext={base:#x}", "--oformat", "binary",
                        "-o", str(out), str(obj)], check=True, capture_output=True)
        return out.read_bytes()


def write_flat(source: str, path: Path, base: int, bits: int = 16) -> Path:
    """:func:`assemble_flat` of ``source`` written to ``path`` (an image for QEMU's -bios,
    -drive or -kernel); returns ``path``."""
    path.write_bytes(assemble_flat(source, base, bits))
    return path
