"""objdump 2.40 as the oracle: run it once over many bytes and split its output by address.

`objdump -D -b binary -m i386:x86-64|i386|i8086 [-M intel] -w --adjust-vma=ADDR FILE` prints one
line per instruction: ``ADDR:<TAB>HEX BYTES <TAB>TEXT``.  Results are cached under
``$TMPDIR/x86vm-objdump-cache`` keyed by objdump's version line, the bytes and the options, so
the oracle runs once.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import subprocess
import tempfile

from support.oracles import objdump_version_line

MACHINE = {16: "i8086", 32: "i386", 64: "i386:x86-64"}
CACHE_DIR = os.path.join(tempfile.gettempdir(), "x86vm-objdump-cache")


def have_objdump() -> bool:
    return shutil.which("objdump") is not None


def objdump(data: bytes, mode: int = 64, intel: bool = False, address: int = 0
            ) -> list[tuple[int, int, str]]:
    """Disassemble `data` as raw code; return [(address, length, text)] in order.

    `text` is exactly what objdump prints after the raw-bytes column (trailing spaces kept).
    """
    tag = f"|{mode}|{intel}|{address}|{objdump_version_line()}"
    key = hashlib.sha256(data + tag.encode()).hexdigest()
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


AS_FLAGS = {16: ["--32"], 32: ["--32"], 64: ["--64"]}


def objdump_strings(strings: list[bytes], mode: int = 64, intel: bool = False
                    ) -> list[tuple[int, str]]:
    """objdump's first instruction of each byte string, each decoded on its own.

    The strings become functions f0, f1, ... of an object file assembled by gas; objdump
    disassembles each symbol's bytes separately (its end acts as the end of the buffer), so
    every string is decoded from its first byte.  Returns [(length, text)] per string.
    """
    tag = f"|{mode}|{intel}|strings|{objdump_version_line()}"
    key = hashlib.sha256(b"".join(strings) + tag.encode())
    path = os.path.join(CACHE_DIR, key.hexdigest() + ".pickle")
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError):
        pass
    lines = [".text"] + ([".code16"] if mode == 16 else [])
    for i, s in enumerate(strings):
        lines.append(f".type f{i},@function\nf{i}: .byte {','.join(str(b) for b in s)}")
    with tempfile.TemporaryDirectory() as tmp:
        src, obj = os.path.join(tmp, "s.s"), os.path.join(tmp, "s.o")
        with open(src, "w") as f:
            f.write("\n".join(lines) + "\n")
        subprocess.run(["as", *AS_FLAGS[mode], "-o", obj, src], check=True)
        cmd = ["objdump", "-d", "-w", obj]
        if mode == 16:
            cmd[1:1] = ["-m", "i8086"]
        if intel:
            cmd[1:1] = ["-M", "intel"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result: list[tuple[int, str]] = []
    want_first = False
    for line in out.split("\n"):
        if line.endswith(">:"):
            want_first = True
            continue
        parts = line.split("\t")
        if want_first and len(parts) >= 3 and parts[0].endswith(":"):
            result.append((len(parts[1].split()), "\t".join(parts[2:])))
            want_first = False
    if len(result) != len(strings):
        raise RuntimeError(f"objdump gave {len(result)} results for {len(strings)} strings")
    os.makedirs(CACHE_DIR, exist_ok=True)
    with open(path + f".{os.getpid()}", "wb") as f:
        pickle.dump(result, f)
    os.replace(path + f".{os.getpid()}", path)
    return result
