"""Build the test guests from source with gcc / GNU as / ld (no nasm).

    python3 tests/guests/build.py OUTDIR [NAME...]

The tests call :func:`build` from a session fixture into a temporary directory. Each recipe
is data: its sources, its mode (16-bit code is assembled in a 32-bit object), the linker
script, the entry symbol and whether the result is a raw binary (objcopy) or an ELF.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

GUEST_DIR = Path(__file__).resolve().parent

CFLAGS = ["-ffreestanding", "-fno-pic", "-fno-pie", "-fno-stack-protector",
          "-fno-asynchronous-unwind-tables", "-fno-builtin", "-nostdlib", "-O2", "-Wall",
          "-Werror", "-Wno-unused-function"]
ARCH_FLAGS = {32: ["-m32", "-march=i686"],
              64: ["-m64", "-mno-red-zone", "-mgeneral-regs-only"]}
LD_EMULATION = {32: "elf_i386", 64: "elf_x86_64"}
LDFLAGS = ["-nostdlib", "-static", "--build-id=none", "-z", "noexecstack",
           "-z", "max-page-size=0x1000"]


@dataclass(frozen=True)
class Recipe:
    sources: tuple[str, ...]
    bits: int
    linker_script: str
    entry: str
    binary: bool = False  # objcopy -O binary (a flat image) instead of an ELF
    bzimage: bool = False  # section .setup, then the rest as a flat binary
    sections: tuple[str, ...] = (".text",)  # what a binary image holds

    @property
    def tools(self) -> tuple[str, ...]:
        return ("gcc", "ld", "objcopy") if self.binary or self.bzimage else ("gcc", "ld")


RECIPES: dict[str, Recipe] = {
    "realmode_hello.bin": Recipe(("realmode/hello.S",), 32, "realmode/link.ld", "_start",
                                 binary=True),
    "rom64k.bin": Recipe(("rom/reset.S",), 32, "rom/link.ld", "rom_start", binary=True,
                         sections=(".text", ".reset")),
    "multiboot.elf": Recipe(("multiboot/entry.S", "multiboot/main.c"), 32,
                            "multiboot/link.ld", "_start"),
    "long64_pvh.elf": Recipe(("long64/pvh_entry.S", "long64/common.S", "long64/main.c"), 64,
                             "long64/link.ld", "pvh_start"),
    "long64_linux.elf": Recipe(("long64/linux_entry.S", "long64/common.S", "long64/main.c"),
                               64, "long64/link.ld", "linux_start"),
    "long64.bzImage": Recipe(("bzimage/setup.S", "long64/linux_entry.S", "long64/common.S",
                               "long64/main.c"), 64, "bzimage/link.ld", "linux_start",
                              bzimage=True),
    "gdb64.bzImage": Recipe(("bzimage/setup.S", "long64/linux_entry.S", "long64/common.S",
                              "gdb/main.c"), 64, "bzimage/link.ld", "linux_start", bzimage=True),
    "crash64.elf": Recipe(("crash/entry.S",), 32, "crash/link.ld", "_start"),
    "tutorial.elf": Recipe(("tutorial/boot.s", "tutorial/kernel.c"), 32, "tutorial/linker.ld",
                           "_start"),
}


class BuildError(RuntimeError):
    pass


def missing_tools() -> list[str]:
    return [t for t in ("gcc", "ld", "objcopy") if shutil.which(t) is None]


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise BuildError(f"{' '.join(cmd)}\n{proc.stdout}{proc.stderr}")


def build(name: str, outdir: Path) -> Path:
    """Build guest ``name`` (a key of RECIPES) into ``outdir``; returns the output path."""
    recipe = RECIPES[name]
    outdir = Path(outdir)
    work = outdir / f"{name}.obj"
    work.mkdir(parents=True, exist_ok=True)
    objects = []
    for src in recipe.sources:
        obj = work / (src.replace("/", "_") + ".o")
        _run(["gcc", *ARCH_FLAGS[recipe.bits], *CFLAGS, "-I", str(GUEST_DIR), "-c",
              str(GUEST_DIR / src), "-o", str(obj)])
        objects.append(str(obj))
    elf = work / "linked.elf"
    _run(["ld", "-m", LD_EMULATION[recipe.bits], *LDFLAGS, "-T",
          str(GUEST_DIR / recipe.linker_script), "-e", recipe.entry, "-o", str(elf), *objects])
    out = outdir / name
    if recipe.binary:
        sections = [a for s in recipe.sections for a in ("-j", s)]
        _run(["objcopy", "-O", "binary", *sections, str(elf), str(out)])
    elif recipe.bzimage:
        _run(["objcopy", "-O", "binary", "-j", ".setup", str(elf), str(work / "setup.bin")])
        _run(["objcopy", "-O", "binary", "-R", ".setup", str(elf), str(work / "kernel.bin")])
        out.write_bytes((work / "setup.bin").read_bytes() + (work / "kernel.bin").read_bytes())
    else:
        shutil.copyfile(elf, out)
    return out


def build_all(outdir: Path) -> dict[str, Path]:
    return {name: build(name, outdir) for name in RECIPES}


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    outdir, names = Path(argv[0]), argv[1:] or list(RECIPES)
    for name in names:
        print(build(name, outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
