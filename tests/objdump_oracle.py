"""objdump 2.40 as the oracle: run it once over many bytes and split its output by address.

`objdump -D -b binary -m i386:x86-64|i386|i8086 [-M intel] -w --adjust-vma=ADDR FILE` prints one
line per instruction: ``ADDR:<TAB>HEX BYTES <TAB>TEXT``.  Results are cached under
``$TMPDIR/x86vm-objdump-cache`` keyed by the bytes and the options, so the oracle runs once.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import subprocess
import tempfile

MACHINE = {16: "i8086", 32: "i386", 64: "i386:x86-64"}
CACHE_DIR = os.path.join(tempfile.gettempdir(), "x86vm-objdump-cache")


def have_objdump() -> bool:
    return shutil.which("objdump") is not None


def objdump(data: bytes, mode: int = 64, intel: bool = False, address: int = 0
            ) -> list[tuple[int, int, str]]:
    """Disassemble `data` as raw code; return [(address, length, text)] in order.

    `text` is exactly what objdump prints after the raw-bytes column (trailing spaces kept).
    """
    key = hashlib.sha256(data + f"|{mode}|{intel}|{address}|v1".encode()).hexdigest()
    path = os.path.join(CACHE_DIR, key + ".pickle")
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError):
        pass
    with tempfile.NamedTemporaryFile(suffix=".bin") as tmp:
        tmp.write(data)
        tmp.flush()
        cmd = ["objdump", "-D", "-b", "binary", "-m", MACHINE[mode], "-w",
               f"--adjust-vma={address:#x}", tmp.name]
        if intel:
            cmd[2:2] = ["-M", "intel"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = []
    for line in out.split("\n"):
        parts = line.split("\t")
        if len(parts) < 3 or not parts[0].endswith(":"):
            continue
        addr = int(parts[0].strip()[:-1], 16)
        length = len(parts[1].split())
        result.append((addr, length, "\t".join(parts[2:])))
    os.makedirs(CACHE_DIR, exist_ok=True)
    tmp_path = path + f".{os.getpid()}"
    with open(tmp_path, "wb") as f:
        pickle.dump(result, f)
    os.replace(tmp_path, path)
    return result
