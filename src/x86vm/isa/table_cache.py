"""The shipped map's compiled tables, cached on disk like ``.pyc`` files.

Compiling ``opcodes.map`` into the decoder's tables costs about 0.15 s per CPU mode, and a
listing needs one mode; a process that starts ``x86vm disasm`` should not pay it each time.
`shipped_tables()` is a mapping {16, 32, 64} -> `Tables` that builds a mode on first use:
from its cache file when one matches, else by compiling (and then writing the file).

The key of a cache file is a hash of everything the tables are made from: the map's text,
the source of the modules that compile it (tables.py, maploader.py, ops.py, this file) and
the Python version; any change makes new files (old ones of other keys are removed when a new
one is written).  A file holds one mode's tables without the build-time scratch (`_merged`,
`_cells`, `_spec_cache`); the parsed map (`omap`, `lists`) is left out too and parsed again
only if someone reads it.  The `Op` enum cannot be pickled (it is made at run time), so its
members are stored as ints and the enum is rebuilt from the cached name list (`op_names`).
Each opcode map (one-byte, 0f, vex0f38, evex0f...) is a pickle of its own after the rest,
unpickled when the decoder first looks into it (`LazyMaps`): most code needs two of the
fifteen, and loading them all took half of a small listing's start-up.

Where: ``__pycache__`` beside opcodes.map, else ``$XDG_CACHE_HOME/x86vm`` (``~/.cache``);
``X86VM_TABLE_CACHE=0`` turns the cache off, ``X86VM_TABLE_CACHE=DIR`` puts it in DIR.  A
file that cannot be read is ignored and rebuilt; one that cannot be written is not an error.
Files are written to a temporary name and renamed, so concurrent processes never see half.
"""

from __future__ import annotations

import gc
import hashlib
import io
import os
import pickle
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping

from . import maploader, ops, tables

_FORMAT = 2            # bump when the file layout changes
_SCRATCH = ("_merged", "_cells", "_spec_cache")
_LAZY = ("omap", "lists")


def _key() -> str:
    digest = hashlib.sha256(f"{_FORMAT} {sys.version} {pickle.HIGHEST_PROTOCOL}".encode())
    for path in (tables.MAP_PATH, tables.__file__, maploader.__file__, ops.__file__, __file__):
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:20]


def cache_dir() -> str | None:
    """The directory of the cache files, or None when the cache is off."""
    setting = os.environ.get("X86VM_TABLE_CACHE", "")
    if setting == "0":
        return None
    if setting:
        return setting
    beside = os.path.join(os.path.dirname(tables.MAP_PATH), "__pycache__")
    if os.access(os.path.dirname(beside), os.W_OK) or os.access(beside, os.W_OK):
        return beside
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(home, "x86vm")


class CachedTables(tables.Tables):
    """`Tables` loaded from a cache file: the parsed map is read again only on demand."""

    def __getattr__(self, name: str):
        if name in _LAZY:
            omap = tables._shipped_map()
            self.omap, self.lists = omap, omap.lists
            return getattr(self, name)
        raise AttributeError(name)


class _Pickler(pickle.Pickler):
    def __init__(self, file, op_enum, op_ids) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.op_enum, self.op_ids = op_enum, op_ids

    def persistent_id(self, obj):
        if type(obj) is self.op_enum:
            return int(obj)
        if obj is self.op_ids:
            return "op_ids"
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, op_enum, op_ids) -> None:
        super().__init__(file)
        self.op_enum, self.op_ids = op_enum, op_ids
        self.members = {int(member): member for member in op_enum}  # (faster than a call)

    def persistent_load(self, pid):
        member = self.members.get(pid) if type(pid) is int else None
        if member is not None:
            return member
        if pid == "op_ids":
            return self.op_ids
        if type(pid) is int:
            return self.op_enum(pid)        # (raises the enum's ValueError)
        raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")

    def find_class(self, module: str, name: str):
        """Only the tables' own classes and plain containers (a cache file is trusted like
        a .pyc, but nothing else needs loading)."""
        if not (module.startswith("x86vm.isa.") and name[:1].isupper()) and \
                (module, name) not in _BUILTINS:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of the tables")
        return super().find_class(module, name)


_BUILTINS = {("builtins", "frozenset"), ("builtins", "set"), ("builtins", "slice")}


def _read(path: str, load):
    try:
        with open(path, "rb") as f:
            enabled = gc.isenabled()
            gc.disable()        # tens of thousands of objects: no collections meanwhile
            try:
                return load(f)
            finally:
                if enabled:
                    gc.enable()
    except FileNotFoundError:
        return None
    except (OSError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            pickle.UnpicklingError):
        return None


def _write(directory: str, name: str, dump) -> None:
    try:
        os.makedirs(directory, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=name + ".", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                dump(f)
                os.fchmod(f.fileno(), 0o644)    # as a .pyc: readable by all
            os.replace(temp, os.path.join(directory, name))
        except BaseException:
            os.unlink(temp)
            raise
        stem = name.split("-")[0] + "-"
        for other in os.listdir(directory):   # the files of older keys
            if other.startswith(stem) and other != name and not other.endswith(".tmp") and \
                    _KEY not in other:
                try:
                    os.unlink(os.path.join(directory, other))
                except OSError:
                    pass
    except OSError:
        pass                # a read-only or full disk: the tables were compiled anyway


_KEY = _key()
_LOCK = threading.Lock()
_MAP_LOCK = threading.RLock()


def op_names() -> list[str]:
    """The operation names of the shipped map (`ops.map_op_names`), from the cache."""
    directory = cache_dir()
    name = f"x86vm_ops-{_KEY}.pickle"
    if directory is not None:
        names = _read(os.path.join(directory, name), pickle.load)
        if type(names) is list and all(type(n) is str for n in names):
            return names
    names = ops.map_op_names(tables._shipped_map())
    if directory is not None:
        _write(directory, name, lambda f: pickle.dump(names, f, pickle.HIGHEST_PROTOCOL))
    return names


class LazyMaps(dict):
    """A Tables' ``maps`` whose opcode maps are unpickled on first use from the cache file's
    bytes.  A map that cannot be read makes the mode's tables compiled afresh (and their
    maps used): the decoder never sees a half-read cache."""

    def __init__(self, blobs: dict[str, bytes], mode: int, op_ids: ops.OpIds) -> None:
        super().__init__()
        self._blobs, self._mode, self._op_ids = blobs, mode, op_ids

    def __missing__(self, name: str):
        with _MAP_LOCK:             # (another thread may be reading this very map)
            if dict.__contains__(self, name):
                return dict.__getitem__(self, name)
            blob = self._blobs.get(name)
            if blob is None:
                raise KeyError(name)
            table = _read_bytes(blob, self._op_ids)
            if type(table) is not list:
                compiled = tables.Tables(tables._shipped_map(), self._mode, self._op_ids)
                for other in list(self._blobs):
                    dict.__setitem__(self, other, compiled.maps[other])
                    del self._blobs[other]
                table = compiled.maps[name]
            dict.__setitem__(self, name, table)
            self._blobs.pop(name, None)
            return table

    def get(self, name: str, default=None):
        return self[name] if name in self else default

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or name in self._blobs

    def _all(self) -> None:
        for name in list(self._blobs):
            self[name]

    def __iter__(self):
        self._all()
        return dict.__iter__(self)

    def __len__(self) -> int:
        return dict.__len__(self) + len(self._blobs)

    def keys(self):
        self._all()
        return dict.keys(self)

    def values(self):
        self._all()
        return dict.values(self)

    def items(self):
        self._all()
        return dict.items(self)

    def __eq__(self, other: object) -> bool:
        self._all()
        return dict.__eq__(self, other)

    __hash__ = None

    def __reduce__(self):
        self._all()
        return dict, (dict(self),)


def _read_bytes(blob: bytes, op_ids: ops.OpIds):
    """One pickled map (None if it cannot be read)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _Unpickler(io.BytesIO(blob), op_ids.enum, op_ids).load()
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            pickle.UnpicklingError):
        return None
    finally:
        if enabled:
            gc.enable()


def _load_state(f, op_ids: ops.OpIds):
    """A cache file: the state without its maps, then each map's pickle (see LazyMaps)."""
    data = f.read()
    stream = io.BytesIO(data)
    header = _Unpickler(stream, op_ids.enum, op_ids).load()
    if type(header) is not tuple or len(header) != 2 or type(header[0]) is not dict:
        return None
    state, sizes = header
    at = stream.tell()
    blobs = {}
    for name, size in sizes:
        blobs[name] = data[at:at + size]
        at += size
    if at != len(data):
        return None
    state["maps"] = LazyMaps(blobs, state.get("mode"), op_ids)
    return state


def _dump_state(f, state: dict, op_ids: ops.OpIds) -> None:
    blobs = []
    for name, table in state["maps"].items():
        out = io.BytesIO()
        _Pickler(out, op_ids.enum, op_ids).dump(table)
        blobs.append((name, out.getvalue()))
    rest = {k: v for k, v in state.items() if k != "maps"}
    _Pickler(f, op_ids.enum, op_ids).dump((rest, [(name, len(b)) for name, b in blobs]))
    for _name, blob in blobs:
        f.write(blob)


def load_mode(mode: int, op_ids: ops.OpIds) -> tables.Tables:
    """One mode's tables of the shipped map: from the cache file, else compiled (and cached)."""
    directory = cache_dir()
    name = f"x86vm_tables-{_KEY}-{mode}.pickle"
    if directory is not None:
        state = _read(os.path.join(directory, name), lambda f: _load_state(f, op_ids))
        if type(state) is dict and state.get("mode") == mode:
            compiled = object.__new__(CachedTables)
            compiled.__dict__.update(state)
            compiled.__dict__.update({k: {} for k in _SCRATCH})
            return compiled
    compiled = tables.Tables(tables._shipped_map(), mode, op_ids)
    if directory is not None:
        state = {k: v for k, v in vars(compiled).items() if k not in _SCRATCH + _LAZY}
        _write(directory, name, lambda f: _dump_state(f, state, op_ids))
    return compiled


class ShippedTables(Mapping):
    """{16, 32, 64} -> the shipped map's `Tables`, each mode built on first use."""

    MODES = (16, 32, 64)

    def __init__(self) -> None:
        self._built: dict[int, tables.Tables] = {}
        self._op_ids = ops.OpIds(tables.op_enum())

    def __getitem__(self, mode: int) -> tables.Tables:
        built = self._built.get(mode)
        if built is None:
            if mode not in self.MODES:
                raise KeyError(mode)
            with _LOCK:
                built = self._built.get(mode)
                if built is None:
                    built = self._built[mode] = load_mode(mode, self._op_ids)
        return built

    def __iter__(self) -> Iterator[int]:
        return iter(self.MODES)

    def __len__(self) -> int:
        return len(self.MODES)


def shipped_tables() -> ShippedTables:
    """The mapping `decoder` uses by default (see the module docstring)."""
    return ShippedTables()
