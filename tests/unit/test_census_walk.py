"""The census walk on synthetic memory and a hand-made type index: each map once, under
its shortest path; pointers, slices (past len too), interfaces (direct and indirect
values), map contents, cycles and unreadable pointers. Pure: no Delve, no process."""

from __future__ import annotations

import struct

from dlvsnap.census.plan import Edge, Plans
from dlvsnap.census.walk import Child, Root, Walk
from dlvsnap.dwarf import TypeDie, TypeIndex
from dlvsnap.kinds import Kind
from dlvsnap.memory import SparseMem

INT, STRING, MAP, T, PT, ST, ANY, EFACE = 1, 2, 10, 20, 21, 22, 30, 31
NAMES, ARR, BIGARR, W = 40, 50, 51, 60  # DIE offsets
ATOMIC, MARK, PPT, UNSAFE, SMAP = 70, 71, 72, 73, 74
BASE = 0x100000  # runtime.types
RT_MAP, RT_PT, RT_T, RT_W = 0x100, 0x200, 0x300, 0x400


def _index() -> TypeIndex:
    dies = {
        INT: TypeDie("DW_TAG_base_type", "int", 8, Kind.INT, -1, 0, ()),
        STRING: TypeDie("DW_TAG_structure_type", "string", 16, Kind.STRING, -1, 0, ()),
        MAP: TypeDie("DW_TAG_typedef", "map[int]int", -1, Kind.MAP, -1, 0, (), INT, INT),
        T: TypeDie(
            "DW_TAG_structure_type",
            "main.T",
            72,
            Kind.STRUCT,
            -1,
            0,
            (("M", 0, MAP), ("Next", 8, PT), ("S", 16, ST), ("A", 40, ANY), ("Name", 56, STRING)),
        ),
        PT: TypeDie("DW_TAG_pointer_type", "*main.T", 8, Kind.POINTER, T, 0, ()),
        ST: TypeDie("DW_TAG_structure_type", "[]*main.T", 24, Kind.SLICE, -1, 0, (), PT),
        ANY: TypeDie("DW_TAG_typedef", "interface {}", -1, Kind.INTERFACE, EFACE, 0, ()),
        EFACE: TypeDie(
            "DW_TAG_structure_type",
            "runtime.eface",
            16,
            Kind.STRUCT,
            -1,
            0,
            (("_type", 0, INT), ("data", 8, INT)),
        ),
        NAMES: TypeDie(
            "DW_TAG_structure_type",
            "main.Names",
            24,
            Kind.STRUCT,
            -1,
            0,
            (("a", 0, STRING), ("n", 16, INT)),
        ),
        ARR: TypeDie("DW_TAG_array_type", "[2]map[int]int", 16, Kind.ARRAY, MAP, 2, ()),
        BIGARR: TypeDie("DW_TAG_array_type", "[100]*main.T", 800, Kind.ARRAY, PT, 100, ()),
        # one map-shaped field: an interface holds it in its data word
        W: TypeDie("DW_TAG_structure_type", "main.W", 8, Kind.STRUCT, -1, 0, (("M", 0, MAP),)),
        # sync/atomic.Pointer[main.T]: {_ [0]*T; v unsafe.Pointer}
        ATOMIC: TypeDie(
            "DW_TAG_structure_type",
            "sync/atomic.Pointer[main.T]",
            8,
            Kind.STRUCT,
            -1,
            0,
            (("_", 0, MARK), ("v", 0, UNSAFE)),
        ),
        MARK: TypeDie("DW_TAG_array_type", "[0]*main.T", 0, Kind.ARRAY, PT, 0, ()),
        UNSAFE: TypeDie("DW_TAG_pointer_type", "unsafe.Pointer", 8, Kind.UNSAFE_POINTER, -1, 0, ()),
        SMAP: TypeDie("DW_TAG_structure_type", "[]map[int]int", 24, Kind.SLICE, -1, 0, (), MAP),
    }
    return TypeIndex(dies, {RT_MAP: MAP, RT_PT: PT, RT_T: T, RT_W: W}, 8)


def _t(
    m: int = 0, nxt: int = 0, s: tuple[int, int, int] = (0, 0, 0), a: tuple[int, int] = (0, 0)
) -> bytes:
    return struct.pack("<9Q", m, nxt, *s, *a, 0, 0)


def _walk(mem: SparseMem, expand=lambda addr, die: []) -> Walk:  # type: ignore[no-untyped-def]
    plans = Plans(_index())

    def each(maps: list[tuple[int, int]]) -> list[list[Child]]:
        return [list(expand(addr, die)) for addr, die in maps]

    return Walk(mem, plans, lambda a: plans.index.by_runtime.get(a - BASE), each)


def test_each_map_once_under_its_shortest_path() -> None:
    mem = SparseMem(
        {
            0x1000: struct.pack("<Q", 0x2000),  # main.g *main.T
            0x2000: _t(m=0x9000, nxt=0x3000, s=(0x4000, 1, 2), a=(BASE + RT_MAP, 0x9100)),
            0x3000: _t(m=0x9000, nxt=0x2000),  # the same map again, further away; a cycle
            0x4000: struct.pack("<2Q", 0x5000, 0x6000),  # [1] is past len
            0x5000: _t(m=0x9200, a=(BASE + RT_PT, 0x7000)),
            0x6000: _t(m=0x9300, nxt=0xDEAD0000),  # an unreadable pointer
            0x7000: _t(m=0x9400),
            0x7100: _t(m=0x9500),
        }
    )

    def expand(addr: int, die: int) -> list[Child]:
        assert die == MAP
        return [Child(0x7100, T, "[1]")] if addr == 0x9100 else []

    w = _walk(mem, expand)
    found = {f.addr: f for f in w.run([Root("main.g", 0x1000, PT)])}
    assert {a: f.path for a, f in found.items()} == {
        0x9000: "main.g.M",
        0x9100: "main.g.A.(map[int]int)",
        0x9200: "main.g.S[0].M",
        0x9300: "main.g.S[1].M",
        0x9400: "main.g.S[0].A.(*main.T).M",
        0x9500: "main.g.A.(map[int]int)[1].M",
    }
    assert [f.beyond_len for f in sorted(found.values(), key=lambda f: f.addr)] == [
        False,
        False,
        False,
        True,
        False,
        False,
    ]
    assert found[0x9000].steps == 1 and found[0x9400].steps == 5
    assert w.stats.unreadable == 1
    # each object read once: g, T1, T2, the slice's array, T3, T4, T5, T6
    assert w.stats.objects == 8


def test_a_shorter_path_found_later_wins() -> None:
    """A map first met 3 steps away from one root, then 1 step away from a root read
    later in the same round: listed under the 1-step path."""
    mem = SparseMem(
        {
            0x1000: _t(nxt=0x2000),  # main.a: .Next.Next.M
            0x2000: _t(nxt=0x3000),
            0x3000: _t(m=0x9000),
            0x1100: _t(m=0x9000),  # main.b: .M
        }
    )
    w = _walk(mem)
    (f,) = w.run([Root("main.a", 0x1000, T), Root("main.b", 0x1100, T)])
    assert (f.path, f.steps) == ("main.b.M", 1)


def test_a_map_root_by_header_and_a_nil_interface() -> None:
    mem = SparseMem({0x1000: _t(a=(BASE + RT_MAP, 0))})  # an interface with a nil map: data 0
    w = _walk(mem)
    found = w.run(
        [Root("main.t", 0x1000, T), Root("goroutine 1 main.main m", 0x9000, MAP, header=True)]
    )
    assert [(f.path, f.addr) for f in found] == [("goroutine 1 main.main m", 0x9000)]


def test_unknown_dynamic_types_are_counted() -> None:
    mem = SparseMem({0x1000: _t(a=(BASE + 0x999, 0x5000))})
    w = _walk(mem)
    assert w.run([Root("main.t", 0x1000, T)]) == []
    assert w.stats.unknown_types == 1


def test_plans_leave_out_what_cannot_reach_a_map() -> None:
    plans = Plans(_index())
    assert plans.plan(NAMES) is None and plans.plan(STRING) is None and plans.plan(INT) is None
    p = plans.plan(T)
    assert p is not None
    assert [(e.off, e.kind, e.label, e.steps) for e in p.edges] == [
        (0, Edge.MAP, ".M", 1),
        (8, Edge.POINTER, ".Next", 1),
        (16, Edge.SLICE, ".S", 1),
        (40, Edge.EFACE, ".A", 1),
    ]
    small = plans.plan(ARR)
    assert small is not None and [e.label for e in small.edges] == ["[0]", "[1]"]
    big = plans.plan(BIGARR)
    assert big is not None and [(e.kind, e.count) for e in big.edges] == [(Edge.ARRAY, 100)]
    assert plans.direct(PT) and plans.direct(MAP) and not plans.direct(T)
    assert plans.runtime_type(MAP) == RT_MAP


def test_a_large_inline_array_is_walked_as_its_own_object() -> None:
    ptrs = [0] * 100
    ptrs[42] = 0x3000
    mem = SparseMem({0x1000: struct.pack("<100Q", *ptrs), 0x3000: _t(m=0x9000)})
    w = _walk(mem)
    (f,) = w.run([Root("main.arr", 0x1000, BIGARR)])
    assert f.path == "main.arr[42].M"


def test_the_type_index_cache_round_trips_and_ignores_a_bad_file(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The index kept in the user's cache is the index read (a census of a large binary
    walks its DWARF once); a cache file that is not one is read around, then replaced."""
    from dlvsnap import dwarf

    ix = TypeIndex(_index().dies, {RT_MAP: MAP}, 8, (dwarf.GlobalVar("main.g", 0x1000, PT),))
    calls: list[str] = []

    def read(path: object) -> TypeIndex:
        calls.append(str(path))
        return ix

    monkeypatch.setattr(dwarf, "read_type_index", read)
    prog = tmp_path / "prog"
    prog.write_bytes(b"not really a binary")
    cache = tmp_path / "types"
    first = dwarf.cached_type_index(prog, cache)
    second = dwarf.cached_type_index(prog, cache)
    assert len(calls) == 1  # the second came from the cache
    for got in (first, second):
        assert got.dies == ix.dies and got.by_runtime == ix.by_runtime
        assert got.variables == ix.variables and got.die_by_name == ix.die_by_name
    (kept,) = cache.iterdir()
    kept.write_bytes(b"\x00garbage")
    assert dwarf.cached_type_index(prog, cache).dies == ix.dies
    assert len(calls) == 2


def test_a_pointer_shaped_struct_in_an_interface_is_read_in_its_data_word() -> None:
    """struct{ M map[int]int } is direct: the interface's data word is the struct itself."""
    mem = SparseMem({0x1000: _t(a=(BASE + RT_W, 0x9000))})
    w = _walk(mem)
    (f,) = w.run([Root("main.t", 0x1000, T)])
    assert (f.path, f.addr, f.steps) == ("main.t.A.(main.W).M", 0x9000, 3)


def test_an_atomic_pointer_is_followed_as_the_pointer_its_type_names() -> None:
    mem = SparseMem({0x1000: struct.pack("<Q", 0x3000), 0x3000: _t(m=0x9000)})
    w = _walk(mem)
    (f,) = w.run([Root("main.cur", 0x1000, ATOMIC)])
    assert (f.path, f.steps) == ("main.cur.Load().M", 2)


def test_a_slice_of_one_element_is_still_indexed() -> None:
    mem = SparseMem({0x1000: struct.pack("<3Q", 0x2000, 1, 1), 0x2000: struct.pack("<Q", 0x9000)})
    w = _walk(mem)
    (f,) = w.run([Root("main.solo", 0x1000, SMAP)])
    assert (f.path, f.steps, f.beyond_len) == ("main.solo[0]", 1, False)
