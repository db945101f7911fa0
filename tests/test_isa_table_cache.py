"""The on-disk cache of the compiled opcode tables (x86vm/isa/table_cache.py).

The cached tables must be the compiled ones: every slot, choice and spec of every map in
every mode compared field by field with freshly compiled tables, and a listing made in a
process that loaded them equal to one made with the cache off.  A stale key, a corrupt file
and an unwritable directory fall back to compiling.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from x86vm.isa import table_cache, tables
from x86vm.isa.ops import OpIds

ROOT = Path(__file__).resolve().parents[1]


def _same(a, b, seen: set, path: str) -> None:
    """Deep comparison of compiled-table objects (slots classes, containers, scalars)."""
    if (id(a), id(b)) in seen:
        return
    seen.add((id(a), id(b)))
    assert type(a) is type(b) or {type(a), type(b)} <= {tables.Tables,
                                                        table_cache.CachedTables} \
        or {type(a), type(b)} == {dict, table_cache.LazyMaps}, path
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, seen, f"{path}[{i}]")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _same(a[key], b[key], seen, f"{path}[{key!r}]")
    elif hasattr(type(a), "__slots__") and not isinstance(a, (int, str)):
        for name in type(a).__slots__:
            assert hasattr(a, name) == hasattr(b, name), f"{path}.{name}"
            if hasattr(a, name):
                _same(getattr(a, name), getattr(b, name), seen, f"{path}.{name}")
    else:
        assert a == b, path


@pytest.mark.parametrize("mode", [16, 32, 64])
def test_cached_tables_equal_compiled_ones(tmp_path, monkeypatch, mode) -> None:
    monkeypatch.setenv("X86VM_TABLE_CACHE", str(tmp_path))
    op_ids = OpIds(tables.op_enum())
    written = table_cache.load_mode(mode, op_ids)          # compiled, then written
    assert type(written) is tables.Tables
    assert list(tmp_path.glob(f"x86vm_tables-*-{mode}.pickle"))
    loaded = table_cache.load_mode(mode, op_ids)
    assert type(loaded) is table_cache.CachedTables        # read back from the file
    assert loaded.maps.keys() == written.maps.keys()
    _same(written.maps, loaded.maps, set(), "maps")
    assert loaded.mode == mode and loaded.op_ids is op_ids
    assert loaded.lists == written.lists                   # the parsed map, on demand


def test_op_members_come_back_as_the_enum(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("X86VM_TABLE_CACHE", str(tmp_path))
    op_ids = OpIds(tables.op_enum())
    table_cache.load_mode(64, op_ids)
    loaded = table_cache.load_mode(64, op_ids)
    spec = loaded.maps["one-byte"][0x01].by_modrm[0].plain
    assert spec.op_ids[1] is tables.op_enum().ADD


def test_stale_key_and_corrupt_file_are_rebuilt(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("X86VM_TABLE_CACHE", str(tmp_path))
    op_ids = OpIds(tables.op_enum())
    monkeypatch.setattr(table_cache, "_KEY", "0" * 20)
    table_cache.load_mode(32, op_ids)
    old = list(tmp_path.glob("x86vm_tables-*"))
    assert [p.name for p in old] == [f"x86vm_tables-{'0' * 20}-32.pickle"]
    monkeypatch.setattr(table_cache, "_KEY", "1" * 20)     # the map or the compiler changed
    assert type(table_cache.load_mode(32, op_ids)) is tables.Tables
    assert [p.name for p in tmp_path.glob("x86vm_tables-*")] == \
        [f"x86vm_tables-{'1' * 20}-32.pickle"]             # the old key's file is gone
    cached = tmp_path / f"x86vm_tables-{'1' * 20}-32.pickle"
    cached.write_bytes(cached.read_bytes()[:1000])          # truncated
    assert type(table_cache.load_mode(32, op_ids)) is tables.Tables
    assert type(table_cache.load_mode(32, op_ids)) is table_cache.CachedTables
    cached.write_bytes(b"\x80\x05garbage")
    assert type(table_cache.load_mode(32, op_ids)) is tables.Tables


def test_maps_are_read_on_first_use(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("X86VM_TABLE_CACHE", str(tmp_path))
    op_ids = OpIds(tables.op_enum())
    written = table_cache.load_mode(64, op_ids)
    loaded = table_cache.load_mode(64, op_ids)
    maps = loaded.maps
    assert type(maps) is table_cache.LazyMaps and len(maps) == len(written.maps)
    assert "vex0f38" in maps and "nonesuch" not in maps and maps.get("nonesuch") is None
    assert dict.__len__(maps) == 0                          # nothing unpickled yet
    _same(written.maps["one-byte"], maps["one-byte"], set(), "one-byte")
    assert list(dict.keys(maps)) == ["one-byte"]
    _same(written.maps["evex0f"], maps.get("evex0f"), set(), "evex0f")
    assert dict.__len__(maps) == 2
    with pytest.raises(KeyError):
        maps["nonesuch"]


def test_threads_reading_the_same_maps_at_once(tmp_path, monkeypatch) -> None:
    import threading

    monkeypatch.setenv("X86VM_TABLE_CACHE", str(tmp_path))
    op_ids = OpIds(tables.op_enum())
    written = table_cache.load_mode(64, op_ids)
    for _ in range(5):
        maps = table_cache.load_mode(64, op_ids).maps
        names = list(maps._blobs)
        errors: list[str] = []

        def read_all(maps=maps, names=names, errors=errors) -> None:
            try:
                for name in names:
                    assert maps[name] is maps.get(name)
            except Exception as exc:    # noqa: BLE001 -- reported below
                errors.append(repr(exc))

        threads = [threading.Thread(target=read_all) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert dict.__len__(maps) == len(written.maps)


def test_a_map_that_cannot_be_read_is_compiled(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("X86VM_TABLE_CACHE", str(tmp_path))
    op_ids = OpIds(tables.op_enum())
    written = table_cache.load_mode(64, op_ids)
    [cached] = tmp_path.glob("x86vm_tables-*-64.pickle")
    data = bytearray(cached.read_bytes())
    loaded = table_cache.load_mode(64, op_ids)
    last = list(loaded.maps._blobs)[-1]
    size = len(loaded.maps._blobs[last])
    data[-size:] = b"\x80\x05garbage".ljust(size, b"\0")  # the last map's pickle spoilt
    cached.write_bytes(bytes(data))
    spoilt = table_cache.load_mode(64, op_ids)
    assert type(spoilt) is table_cache.CachedTables         # the rest still reads
    _same(written.maps[last], spoilt.maps[last], set(), last)     # compiled instead
    _same(written.maps, spoilt.maps, set(), "maps")


def test_unwritable_directory_still_compiles(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("X86VM_TABLE_CACHE", str(blocker / "cache"))
    compiled = table_cache.load_mode(16, OpIds(tables.op_enum()))
    assert type(compiled) is tables.Tables


def test_cache_off_and_modes_on_demand(monkeypatch) -> None:
    monkeypatch.setenv("X86VM_TABLE_CACHE", "0")
    assert table_cache.cache_dir() is None
    shipped = table_cache.shipped_tables()
    assert set(shipped) == {16, 32, 64} and len(shipped) == 3
    assert not shipped._built                               # nothing compiled yet
    assert shipped[32].mode == 32 and set(shipped._built) == {32}
    with pytest.raises(KeyError):
        shipped[8]


_LISTING = """
import random, sys
from x86vm.isa import decode_all, table_cache
from x86vm.disasm.att import format_att
from x86vm.disasm.intel import format_intel
rng = random.Random(14)
data = bytes(rng.randrange(256) for _ in range(20000))
for mode in (16, 32, 64):
    for insn in decode_all(data, 0x1000, mode):
        print(insn.length, format_att(insn), format_intel(insn), int(insn.op))
print(type(__import__("x86vm.isa.decoder").isa.decoder._TABLES[64]).__name__, file=sys.stderr)
"""


def test_a_process_using_the_cache_lists_as_one_compiling(tmp_path) -> None:
    """Random bytes in every mode: the text with the cache off, then with it written and read."""
    def run(setting: str) -> tuple[str, str]:
        env = {**os.environ, "X86VM_TABLE_CACHE": setting, "PYTHONPATH": str(ROOT / "src")}
        done = subprocess.run([sys.executable, "-c", _LISTING], env=env, capture_output=True,
                              text=True, check=True)
        return done.stdout, done.stderr.strip()

    compiled, kind = run("0")
    assert kind == "Tables"
    first, kind = run(str(tmp_path))
    assert kind == "Tables" and first == compiled           # compiled and written
    cached, kind = run(str(tmp_path))
    assert kind == "CachedTables" and cached == compiled    # read from the files


class _Payload:
    def __reduce__(self):
        return (print, ("pickle ran code",))


def test_a_file_naming_other_callables_is_not_loaded(tmp_path, monkeypatch, capsys) -> None:
    import pickle

    monkeypatch.setenv("X86VM_TABLE_CACHE", str(tmp_path))
    monkeypatch.setattr(table_cache, "_KEY", "2" * 20)
    (tmp_path / f"x86vm_tables-{'2' * 20}-64.pickle").write_bytes(
        pickle.dumps({"mode": 64, "maps": _Payload()}))
    assert type(table_cache.load_mode(64, OpIds(tables.op_enum()))) is tables.Tables
    assert "pickle ran code" not in capsys.readouterr().out
