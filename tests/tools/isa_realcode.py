"""Real code the issue does not name, against objdump 2.40: kernel, firmware, 16/32-bit code.

    python3 tests/tools/isa_realcode.py [--syntax att|intel|both] [--only NAME...] [--list]

Inputs (each skipped when absent): the cached Linux kernel (~/.cache/x86vm/linux: vmlinux,
the -m16 setup objects of arch/x86/boot and the linked setup.elf, arch/x86/boot/compressed),
SeaBIOS (/usr/share/seabios/bios.bin as 16- and as 32-bit code), 32-bit code compiled here
(the kernel's lib/decompress_*.c with ``gcc -m32 -ffreestanding``, see `build_code32`), and
shared libraries from /usr/lib/x86_64-linux-gnu.  Every instruction objdump decodes is
decoded at the same address (tests/tools/isa_compare.py) and compared in length and text; the table
printed at the end is what docs/isa.md records.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tools.isa_compare import compare, load_code  # noqa: E402

LINUX = os.path.expanduser(os.environ.get("X86VM_LINUX_CACHE", "~/.cache/x86vm/linux"))
BUILD = os.path.join(LINUX, "build")
SEABIOS = "/usr/share/seabios/bios.bin"
LIBDIR = "/usr/lib/x86_64-linux-gnu"
LIBS = ["libcrypto.so.3", "libstdc++.so.6", "libm.so.6", "libsqlite3.so.0", "libz.so.1",
        "libssl.so.3", "libzstd.so.1", "liblzma.so.5", "libgmp.so.10", "libcurl.so.4"]
#: the kernel's decompressors: self-contained C that builds freestanding for i386
CODE32_SOURCES = ["decompress_inflate", "decompress_unxz", "decompress_bunzip2",
                  "decompress_unlzma", "decompress_unlzo"]
CODE32_OPTIONS = ("-O2", "-Os", "-O1 -march=i386", "-O3 -march=haswell",
                  "-O3 -march=skylake-avx512")
CODE32_DIR = os.path.join(tempfile.gettempdir(), "x86vm-code32")


def linux_source() -> str | None:
    found = sorted(glob.glob(os.path.join(LINUX, "src", "linux-*")))
    return found[-1] if found else None


def build_code32(sources: tuple[str, ...] | list[str] = CODE32_SOURCES,
                 options: tuple[str, ...] | list[str] = CODE32_OPTIONS,
                 out_dir: str = CODE32_DIR) -> list[str]:
    """Compile the kernel's decompressors as 32-bit freestanding objects (cached)."""
    src = linux_source()
    if src is None or not os.path.isdir(BUILD):
        return []
    os.makedirs(out_dir, exist_ok=True)
    prelude = os.path.join(out_dir, "prelude.h")
    with open(prelude, "w") as f:      # what the boot stub's misc.c would provide
        f.write("#define NULL ((void *)0)\n"
                "static unsigned long free_mem_ptr, free_mem_end_ptr;\n"
                "static void error(char *m);\n")
    inc = [f"{src}/include", f"{src}/arch/x86/include", f"{BUILD}/include",
           f"{BUILD}/arch/x86/include/generated", f"{BUILD}/arch/x86/include/generated/uapi",
           f"{src}/arch/x86/include/uapi", f"{src}/include/uapi",
           f"{BUILD}/include/generated/uapi"]
    flags = ["-m32", "-ffreestanding", "-fno-pic", "-fno-stack-protector", "-D__KERNEL__",
             "-DSTATIC=", "-D__DISABLE_EXPORTS", "-D__PRE_RAM__",
             *(f"-I{d}" for d in inc), "-include", f"{src}/include/linux/kconfig.h",
             "-include", f"{src}/include/linux/compiler_types.h", "-include", prelude]
    outputs = []
    for name in sources:
        for opt in options:
            obj = os.path.join(out_dir, f"{name}{opt.replace(' -march=', '-')}.o")
            if not os.path.exists(obj):
                proc = subprocess.run(["gcc", *opt.split(), *flags, "-c",
                                       f"{src}/lib/{name}.c", "-o", obj], capture_output=True)
                if proc.returncode != 0:
                    continue
            outputs.append(obj)
    return outputs


def inputs() -> list[tuple[str, str, int]]:
    """(label, path, mode) of every real-code input present on this machine."""
    out: list[tuple[str, str, int]] = []
    boot = os.path.join(BUILD, "arch", "x86", "boot")
    if os.path.exists(os.path.join(LINUX, "vmlinux")):
        out.append(("linux vmlinux", os.path.join(LINUX, "vmlinux"), 64))
    if os.path.exists(os.path.join(boot, "setup.elf")):
        out.append(("linux boot/setup.elf", os.path.join(boot, "setup.elf"), 16))
    for obj in sorted(glob.glob(os.path.join(boot, "*.o"))):
        out.append((f"linux boot/{os.path.basename(obj)}", obj, 16))
    for obj in sorted(glob.glob(os.path.join(boot, "compressed", "*.o"))):
        if not obj.endswith(("head_64.o", "piggy.o")):      # head_64: mixed 32/64-bit
            out.append((f"linux boot/compressed/{os.path.basename(obj)}", obj, 64))
    if os.path.exists(SEABIOS):
        out.append(("seabios bios.bin (16-bit)", SEABIOS, 16))
        out.append(("seabios bios.bin (32-bit)", SEABIOS, 32))
    for name, mode in (("bios-microvm.bin", 16), ("bios-microvm.bin", 32),
                       ("vgabios-stdvga.bin", 16)):
        path = os.path.join(os.path.dirname(SEABIOS), name)
        if os.path.exists(path):
            out.append((f"seabios {name} ({mode}-bit)", path, mode))
    for obj in build_code32():
        out.append((f"gcc -m32 {os.path.basename(obj)}", obj, 32))
    for lib in LIBS:
        path = os.path.join(LIBDIR, lib)
        if os.path.exists(path):
            out.append((lib, path, 64))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--syntax", choices=["att", "intel", "both"], default="both")
    ap.add_argument("--only", nargs="+", help="labels containing any of these words")
    ap.add_argument("--show", type=int, default=0, help="mismatch patterns shown per input")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    todo = inputs()
    if args.only:
        todo = [t for t in todo if any(w in t[0] for w in args.only)]
    if args.list:
        for label, path, mode in todo:
            print(f"{label:45} {mode}-bit {path}")
        return 0
    syntaxes = ["att", "intel"] if args.syntax == "both" else [args.syntax]
    totals = {s: [0, 0, 0] for s in syntaxes}
    for label, path, mode in todo:
        data, address = load_code(path)
        if not data:
            continue
        for syntax in syntaxes:
            n, lb, tb = compare(data, address, mode, syntax == "intel", args.show,
                                quiet=not args.show)
            for i, v in enumerate((n, lb, tb)):
                totals[syntax][i] += v
            print(f"{label:45} {mode}-bit {syntax:5} {n:9} insns {lb:5} length {tb:5} text",
                  flush=True)
    for syntax, (n, lb, tb) in totals.items():
        share = 100.0 * (lb + tb) / n if n else 0.0
        print(f"TOTAL {syntax:5} {n} instructions, {lb} length, {tb} text mismatches "
              f"({share:.4f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
