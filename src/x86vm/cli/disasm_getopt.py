"""objdump 2.40's command line, parsed the way its ``getopt_long`` (glibc) parses it.

Short options cluster (``-CdlSw``), a short option's argument may be glued (``-Mintel``) or
the next word (``-M intel``); long options may be abbreviated to any unambiguous prefix and
take ``=VALUE`` (or the next word when the argument is required); words that are not options
are the files, wherever they stand, and ``--`` ends the options. Errors carry glibc's wording
(``invalid option -- 'q'``, ``unrecognized option '--bogus'``, ``option '--dis' is ambiguous;
possibilities: ...``). The option table was read off objdump 2.40 itself: each short letter
and each long name probed alone and with an argument, the order from its ambiguity messages.
"""

from __future__ import annotations

from dataclasses import dataclass

NO, REQUIRED, OPTIONAL = 0, 1, 2

SHORT_OPTIONS: dict[str, int] = {
    **dict.fromkeys("CDFGHLRSTVadefghilprstvwxz", NO),
    **dict.fromkeys("EIMPUbjm", REQUIRED),
    "W": OPTIONAL,
}
"""objdump 2.40's short options and whether each takes an argument."""

LONG_OPTIONS: tuple[tuple[str, int, str], ...] = (
    # (name, argument, key): options with the same key are one option to getopt
    ("adjust-vma", REQUIRED, "adjust-vma"),
    ("all-headers", NO, "x"),
    ("architecture", REQUIRED, "m"),
    ("archive-headers", NO, "a"),
    ("ctf", OPTIONAL, "ctf"),
    ("ctf-parent", REQUIRED, "ctf-parent"),
    ("debugging", NO, "g"),
    ("debugging-tags", NO, "e"),
    ("demangle", OPTIONAL, "C"),
    ("disassemble", OPTIONAL, "d"),
    ("disassemble-all", NO, "D"),
    ("disassemble-zeroes", NO, "z"),
    ("disassembler-options", REQUIRED, "M"),
    ("dwarf", OPTIONAL, "dwarf"),
    ("dwarf-check", NO, "dwarf-check"),
    ("dwarf-depth", REQUIRED, "dwarf-depth"),
    ("dwarf-start", REQUIRED, "dwarf-start"),
    ("dynamic-reloc", NO, "R"),
    ("dynamic-syms", NO, "T"),
    ("disassembler-color", REQUIRED, "disassembler-color"),
    ("endian", REQUIRED, "endian"),
    ("file-headers", NO, "f"),
    ("file-offsets", NO, "F"),
    ("file-start-context", NO, "file-start-context"),
    ("full-contents", NO, "s"),
    ("headers", NO, "h"),
    ("help", NO, "H"),
    ("include", REQUIRED, "I"),
    ("info", NO, "i"),
    ("inlines", NO, "inlines"),
    ("insn-width", REQUIRED, "insn-width"),
    ("line-numbers", NO, "l"),
    ("no-addresses", NO, "no-addresses"),
    ("no-recurse-limit", NO, "no-recurse-limit"),
    ("no-recursion-limit", NO, "no-recurse-limit"),
    ("no-show-raw-insn", NO, "no-show-raw-insn"),
    ("prefix", REQUIRED, "prefix"),
    ("prefix-addresses", NO, "prefix-addresses"),
    ("prefix-strip", REQUIRED, "prefix-strip"),
    ("private", REQUIRED, "P"),
    ("private-headers", NO, "p"),
    ("process-links", NO, "process-links"),
    ("recurse-limit", NO, "recurse-limit"),
    ("recursion-limit", NO, "recurse-limit"),
    ("reloc", NO, "r"),
    ("section", REQUIRED, "j"),
    ("section-headers", NO, "h"),
    ("sframe", OPTIONAL, "sframe"),
    ("show-all-symbols", NO, "show-all-symbols"),
    ("show-raw-insn", NO, "show-raw-insn"),
    ("source", NO, "S"),
    ("source-comment", OPTIONAL, "source-comment"),
    ("special-syms", NO, "special-syms"),
    ("stabs", NO, "G"),
    ("start-address", REQUIRED, "start-address"),
    ("stop-address", REQUIRED, "stop-address"),
    ("syms", NO, "t"),
    ("target", REQUIRED, "b"),
    ("unicode", REQUIRED, "U"),
    ("version", NO, "V"),
    ("visualize-jumps", OPTIONAL, "visualize-jumps"),
    ("wide", NO, "w"),
)
"""objdump 2.40's long options in its table order (the order of its ambiguity messages)."""

LONG_NAME = {key: name for name, _, key in reversed(LONG_OPTIONS)}
"""An option key's first long name, for messages about short options."""


class GetoptError(Exception):
    """A command line getopt refuses; the message is glibc's, without the program name."""


@dataclass
class Parsed:
    """The options in command-line order as (key, argument or None), and the files."""

    options: list[tuple[str, str | None]]
    files: list[str]


def parse(argv: list[str]) -> Parsed:
    """Parse ``argv`` (without the program name) as objdump's getopt_long does."""
    options: list[tuple[str, str | None]] = []
    files: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            files.extend(argv[i:])
            break
        if arg.startswith("--"):
            i = _long(arg[2:], argv, i, options)
        elif arg.startswith("-") and arg != "-":
            i = _short_cluster(arg[1:], argv, i, options)
        else:
            files.append(arg)
    return Parsed(options, files)


def _short_cluster(cluster: str, argv: list[str], i: int,
                   options: list[tuple[str, str | None]]) -> int:
    for pos, letter in enumerate(cluster):
        kind = SHORT_OPTIONS.get(letter)
        if kind is None:
            raise GetoptError(f"invalid option -- '{letter}'")
        rest = cluster[pos + 1:]
        if kind == NO:
            options.append((letter, None))
            continue
        if rest:
            options.append((letter, rest))
        elif kind == OPTIONAL:
            options.append((letter, None))
        elif i < len(argv):
            options.append((letter, argv[i]))
            i += 1
        else:
            raise GetoptError(f"option requires an argument -- '{letter}'")
        break
    return i


def _long(text: str, argv: list[str], i: int, options: list[tuple[str, str | None]]) -> int:
    name, has_value, value = text.partition("=")
    found = next((o for o in LONG_OPTIONS if o[0] == name), None)
    if found is None:
        matches = [o for o in LONG_OPTIONS if o[0].startswith(name)]
        if not matches:
            raise GetoptError(f"unrecognized option '--{text}'")
        first = matches[0]
        differing = [o for o in matches[1:] if o[1:] != first[1:]]
        if differing:
            names = " ".join(f"'--{o[0]}'" for o in (first, *differing))
            raise GetoptError(f"option '--{text}' is ambiguous; possibilities: {names}")
        found = first
    full_name, kind, key = found
    if has_value:
        if kind == NO:
            raise GetoptError(f"option '--{full_name}' doesn't allow an argument")
        options.append((key, value))
    elif kind == REQUIRED:
        if i >= len(argv):
            raise GetoptError(f"option '--{full_name}' requires an argument")
        options.append((key, argv[i]))
        i += 1
    else:
        options.append((key, None))
    return i


def spelling(key: str) -> str:
    """How to name an option in a message: ``-l (--line-numbers)`` or ``--dwarf``."""
    long_name = LONG_NAME.get(key)
    if len(key) == 1:
        return f"-{key} (--{long_name})" if long_name else f"-{key}"
    return f"--{long_name or key}"
