"""Keys of every type (issue 12), on synthetic memory: structs, arrays, pointers and
interfaces decoded with a type description, printed as %#v prints them, tagged in JSON,
hashed exactly or not at all, and bounded against what a hostile program can hold."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dlvsnap import snapfile
from dlvsnap.decode import SwissDecoder, decode_map_type
from dlvsnap.decode.keys import MAX_KEY_VALUES, KeyDecoder
from dlvsnap.decode.types import KnownTypes, RecordingTypes
from dlvsnap.dwarf import reflect_name
from dlvsnap.errors import SnapshotFileError
from dlvsnap.kinds import Kind
from dlvsnap.layouts import load_layout
from dlvsnap.memory import RecordingMem, SparseMem
from dlvsnap.model import (
    ArrayKey,
    GoField,
    GoType,
    IfaceKey,
    KeyType,
    PointerKey,
    RawKey,
    StructKey,
    key_to_json,
    key_to_text,
)
from dlvsnap.render import html
from dlvsnap.target import TargetInfo
from tests.unit.synth import SwissMap

INT = GoType("int", Kind.INT, 8)
INT16 = GoType("int16", Kind.INT16, 2)
UINT16 = GoType("uint16", Kind.UINT16, 2)
F32 = GoType("float32", Kind.FLOAT32, 4)
F64 = GoType("float64", Kind.FLOAT64, 8)
STRING = GoType("string", Kind.STRING, 16)
PAIR = GoType("main.pair", Kind.STRUCT, 24, (GoField("a", 0, INT), GoField("b", 8, STRING)))
PTR = GoType("*main.T", Kind.POINTER, 8)
ANY = GoType("interface {}", Kind.INTERFACE, 16)
SHAPE = GoType("main.Shape", Kind.INTERFACE, 16, methods=True)
NAME = GoType("main.name", Kind.STRUCT, 16, (GoField("s", 0, STRING),))


def arr(elem: GoType, n: int) -> GoType:
    name = f"[{n}]{elem.name}"
    return GoType(name, Kind.ARRAY, elem.size * n, elem=elem, length=n)


def w(n: int) -> bytes:
    return n.to_bytes(8, "little", signed=n < 0)


class Mem:
    """Synthetic memory: allocations at increasing addresses."""

    def __init__(self) -> None:
        self.mem = SparseMem()
        self.next = 0x10000

    def alloc(self, data: bytes) -> int:
        addr = self.next
        self.mem.add(addr, data)
        self.next += (len(data) + 0xFF) // 0x100 * 0x100 + 0x100
        return addr

    def string(self, s: str | bytes) -> bytes:
        b = s.encode() if isinstance(s, str) else s
        return w(self.alloc(b)) + w(len(b))


def dec(t: GoType, m: Mem, types: dict[int, GoType] | None = None) -> KeyDecoder:
    return KeyDecoder(KeyType(t.kind, t.size, False, t), 8, True, m.mem, KnownTypes(types or {}))


def test_struct_with_a_string_field() -> None:
    m = Mem()
    k = dec(PAIR, m).from_value(w(4) + m.string('s"4'))
    assert isinstance(k, StructKey) and k.values == (4, 's"4')
    assert key_to_text(k) == r'main.pair{a:4, b:"s\"4"}'
    assert key_to_json(k) == {"struct": "main.pair", "fields": [["a", 4], ["b", 's"4']]}
    # the same key elsewhere (another string data pointer) is the same key
    assert dec(PAIR, m).from_value(w(4) + m.string('s"4')) == k


def test_pointers_are_addresses_never_followed() -> None:
    m = Mem()
    self_ref = GoType(
        "main.node", Kind.STRUCT, 8, (GoField("next", 0, GoType("*main.node", 22, 8)),)
    )
    at = m.alloc(bytes(8))
    m.mem.add(at, w(at))  # a node pointing to itself
    k = dec(self_ref, m).from_value(w(at))
    assert key_to_text(k) == f"main.node{{next:(*main.node)({at:#x})}}"
    assert key_to_text(dec(PTR, m).from_value(w(0xC000012345))) == "(*main.T)(0xc000012345)"
    assert key_to_text(dec(PTR, m).from_value(w(0))) == "(*main.T)(nil)"
    assert key_to_json(dec(PTR, m).from_value(w(7))) == {"pointer": "*main.T", "addr": 7}


def test_arrays_short_long_and_of_bytes() -> None:
    m = Mem()
    assert key_to_text(dec(arr(INT, 2), m).from_value(w(4) + w(5))) == "[2]int{4, 5}"
    long = arr(INT16, 20)
    k = dec(long, m).from_value(b"".join(i.to_bytes(2, "little") for i in range(20)))
    assert key_to_text(k) == "[20]int16{" + ", ".join(map(str, range(16))) + ", …}"
    assert key_to_json(k)["elems"] == list(range(20))
    b = dec(arr(GoType("uint8", Kind.UINT8, 1), 3), m).from_value(b"\x01\xff\x00")
    assert isinstance(b, ArrayKey) and key_to_text(b) == "[3]uint8{0x1, 0xff, 0x0}"
    assert key_to_json(b) == {"array": "[3]uint8", "len": 3, "hex": "01ff00"}


def test_nested_struct_with_array_struct_string_unsigned_float32() -> None:
    m = Mem()
    inner = GoType("main.inner", Kind.STRUCT, 16, (GoField("s", 0, STRING),))
    nested = GoType(
        "main.nested",
        Kind.STRUCT,
        24 + 32 + 16 + 8,
        (
            GoField("p", 0, PAIR),
            GoField("arr", 24, arr(STRING, 2)),
            GoField("in", 56, inner),
            GoField("u", 72, UINT16),
            GoField("f", 76, F32),
        ),
    )
    raw = w(2) + m.string("p") + m.string("x") + m.string("2") + m.string("in")
    raw += (5).to_bytes(2, "little") + bytes(2) + bytes.fromhex("0000003f")
    k = dec(nested, m).many_from_values([raw])[0]  # strings read ahead, with one read_many
    assert key_to_text(k) == (
        'main.nested{p:main.pair{a:2, b:"p"}, arr:[2]string{"x", "2"}, '
        'in:main.inner{s:"in"}, u:0x5, f:0.5}'
    )


def test_interfaces_are_their_dynamic_value() -> None:
    m = Mem()
    types = {0x500: STRING, 0x600: PAIR, 0x700: F64, 0x800: INT, 0x900: PTR}
    d = dec(ANY, m, types)

    def boxed(t: int, body: bytes) -> bytes:
        return w(t) + w(m.alloc(body))

    assert key_to_text(d.from_value(boxed(0x500, m.string("one")))) == '"one"'
    seven = d.from_value(boxed(0x600, w(7) + m.string("seven")))
    assert key_to_text(seven) == 'main.pair{a:7, b:"seven"}'
    assert key_to_text(d.from_value(boxed(0x700, bytes.fromhex("0000000000000440")))) == "2.5"
    assert key_to_text(d.from_value(boxed(0x800, w(42)))) == "42"
    ptr = d.from_value(w(0x900) + w(0xC0000A0000))  # pointer-shaped: in the data word
    assert key_to_text(ptr) == "(*main.T)(0xc0000a0000)"
    nil = d.from_value(bytes(16))
    assert key_to_text(nil) == "interface {}(nil)"
    assert key_to_json(nil) == {"interface": "interface {}", "type": None, "value": None}
    assert key_to_json(seven) == {
        "interface": "interface {}",
        "type": "main.pair",
        "value": {"struct": "main.pair", "fields": [["a", 7], ["b", "seven"]]},
    }
    unknown = d.from_value(w(0x4242) + w(1))
    assert isinstance(unknown, IfaceKey) and unknown.type_addr == 0x4242
    assert key_to_text(unknown) == "interface {}(<type 0x4242>)"
    # a non-empty interface: the type word is an itab, whose Type follows its Inter
    itab = m.alloc(w(0x1) + w(0x600))
    k = dec(SHAPE, m, types).from_value(w(itab) + w(m.alloc(w(1) + m.string("c"))))
    assert key_to_text(k) == 'main.pair{a:1, b:"c"}'


def test_hostile_strings_are_escaped_in_the_text_view() -> None:
    m = Mem()
    k = dec(PAIR, m).from_value(w(1) + m.string("\x1b[31mred\u202e\n"))
    text = key_to_text(k)
    assert "\x1b" not in text and "\u202e" not in text and "\n" not in text
    assert text == r'main.pair{a:1, b:"\x1b[31mred\u202e\n"}'
    bad = dec(PAIR, m).from_value(w(1) + m.string(b"\xff"))
    assert key_to_text(bad) == r'main.pair{a:1, b:"\xff"}'


def test_size_and_depth_are_bounded() -> None:
    m = Mem()
    huge = arr(arr(arr(INT, 1 << 10), 1 << 10), 1 << 10)  # 8 GiB of key: never read whole
    start = time.monotonic()
    big = dec(huge, m)._value(bytes(1 << 16), huge.elem.elem, 0, _budget())  # type: ignore[union-attr]
    assert isinstance(big, ArrayKey) and len(big.elems) == 64
    assert time.monotonic() - start < 1
    wide = arr(arr(INT, 64), 64)  # 4096 values: past the key's budget the rest is unread
    k = dec(wide, m).from_value(bytes(wide.size))
    assert isinstance(k, ArrayKey)
    values = sum(len(x.elems) for x in k.elems if isinstance(x, ArrayKey))
    assert values <= MAX_KEY_VALUES
    deep = INT
    for i in range(12):
        deep = GoType(f"main.d{i}", Kind.STRUCT, 8, (GoField("x", 0, deep),))
    k = dec(deep, m).from_value(w(3))
    text = key_to_text(k)
    assert "0x0300000000000000" in text and text.count("{") <= 8  # bytes past the depth
    assert len(key_to_text(dec(arr(STRING, 64), m).from_value(bytes(64 * 16)))) <= 120


def _budget():  # type: ignore[no-untyped-def]
    from dlvsnap.decode.keys import _Budget

    return _Budget()


def test_hash_input_is_exact_or_none() -> None:
    m = Mem()
    assert dec(NAME, m).hash_input(dec(NAME, m).from_value(m.string("n3"))) == b"n3"
    xy = GoType(
        "main.xy",
        Kind.STRUCT,
        8,
        (GoField("x", 0, GoType("int32", 5, 4)), GoField("y", 4, GoType("int32", 5, 4))),
    )
    raw = (3).to_bytes(4, "little") + (-3).to_bytes(4, "little", signed=True)
    assert dec(xy, m).hash_input(dec(xy, m).from_value(raw)) == raw
    assert dec(PTR, m).hash_input(dec(PTR, m).from_value(w(0xC000))) == w(0xC000)
    d = dec(ANY, m, {0x800: INT})
    assert d.hash_input(d.from_value(w(0x800) + w(m.alloc(w(1))))) is None
    one_float = GoType("main.f", Kind.STRUCT, 8, (GoField("v", 0, F64),))
    nan = bytes.fromhex("010000000000f87f")
    assert dec(one_float, m).hash_input(dec(one_float, m).from_value(nan)) is None


def test_type_names_as_reflect_prints_them() -> None:
    assert reflect_name("map[string]*net/url.URL") == "map[string]*url.URL"
    assert reflect_name("github.com/a/b.T[int,example.com/c.D]") == "b.T[int,c.D]"
    assert reflect_name("struct { a int; b string }") == "struct { a int; b string }"


def test_report_shows_tagged_keys_as_go_does() -> None:
    assert html.key_text({"struct": "main.pair", "fields": [["a", 4], ["b", "s4"]]}) == (
        'main.pair{a:4, b:"s4"}'
    )
    assert html.key_text({"pointer": "*main.T", "addr": 0xC000}) == "(*main.T)(0xc000)"
    assert html.key_text({"array": "[3]uint8", "len": 3, "hex": "01ff00"}) == (
        "[3]uint8{0x1, 0xff, 0x0}"
    )
    iface = {"interface": "interface {}", "type": "float64", "value": 2.5}
    assert html.key_text(iface) == "2.5"
    evil = {"struct": "\x1b[2J", "fields": [["\u202e", "\x07"]]}
    assert "\x1b" not in html.key_text(evil) and "\u202e" not in html.key_text(evil)
    deep: object = 1
    for _ in range(30):
        deep = {"struct": "s", "fields": [["x", deep]]}
    assert len(html.key_text(deep)) <= 60
    assert html.key_text({"struct": "s", "fields": "not a list"}) == (
        '{"struct":"s","fields":"not a list"}'
    )


TARGET = TargetInfo("/nowhere/prog", "go1.26.8", (), "amd64", 8, True, "swiss")


def _struct_map(tmp_path: Path) -> tuple[Path, list[object]]:
    sm = SwissMap(load_layout("swiss", "go1.26.8", 8, True), key_kind=Kind.STRUCT, key_size=24)
    keys = {0: (0x11, w(4) + _sm_string(sm, "s4")), 3: (0x22, w(7) + _sm_string(sm, "se"))}
    group = sm.alloc(sm.group(keys))
    h = sm.header(used=2, dir_ptr=group, dir_len=0)
    type_addr = sm.type_desc()
    key_type = int.from_bytes(sm.mem.read(type_addr + 48, 8), "little")  # MapType.Key
    rec, types = RecordingMem(sm.mem), RecordingTypes(KnownTypes({key_type: PAIR}))
    mt = decode_map_type(sm.layout, rec, type_addr, types)
    snap = SwissDecoder(sm.layout, rec, mt, types).snapshot(h)
    path = tmp_path / "m.snap.json"
    snapfile.save(
        path,
        snap,
        target=TARGET,
        expr="m",
        type_addr=type_addr,
        type_name="map[main.pair]int",
        regions=rec.regions,
        types=types.seen,
    )
    return path, snap.live_keys()


def _sm_string(sm: SwissMap, s: str) -> bytes:
    return w(sm.alloc(s.encode())) + w(len(s))


def test_snapshot_files_keep_their_key_types(tmp_path: Path) -> None:
    path, keys = _struct_map(tmp_path)
    assert [key_to_text(k) for k in keys] == ['main.pair{a:4, b:"s4"}', 'main.pair{a:7, b:"se"}']  # type: ignore[arg-type]
    doc = json.loads(path.read_text())
    assert doc["version"] == 3 and len(doc["types"]) == 1
    assert doc["state"]["live_keys"][0] == {
        "struct": "main.pair",
        "fields": [["a", 4], ["b", "s4"]],
    }
    assert snapfile.load(path).snapshot.live_keys() == keys


def test_a_hostile_type_in_a_snapshot_file_is_refused(tmp_path: Path) -> None:
    path, _ = _struct_map(tmp_path)
    doc = json.loads(path.read_text())
    t: dict[str, object] = {"name": "int", "kind": 2, "size": 8}
    for _ in range(9):
        t = {"name": "s", "kind": 25, "size": 8, "fields": [["x", 0, t]]}
    doc["types"][0][1] = t
    path.write_text(json.dumps(doc))
    with pytest.raises(SnapshotFileError, match="nested or sized past"):
        snapfile.load(path)


@pytest.mark.parametrize("name", ["classic-structs", "swiss-strings", "classic-strings"])
def test_version_1_files_still_load(name: str) -> None:
    """Files written before key types: struct keys stay bytes, and still match the file."""
    data = Path(__file__).resolve().parents[1] / "data" / f"{name}.snap.json"
    assert json.loads(data.read_text())["version"] == 1
    keys = snapfile.load(data).snapshot.live_keys()
    if name == "classic-structs":
        assert keys and all(isinstance(k, RawKey) for k in keys)


def test_pointer_key_shapes() -> None:
    assert isinstance(dec(PTR, Mem()).from_value(w(1)), PointerKey)
