"""Pure data: what a map looked like at one stop, and what changed between two stops.

Nothing here reads memory, knows Delve or renders; every object converts to JSON-ready
data. ``str()`` of a snapshot, a diff or an event is its text view (README, "Python API"),
which lives in dlvsnap.render.text: that module installs it here when it is imported
(``set_text_view``; the API and the CLI import it), so that the model imports no renderer.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from dlvsnap.gofmt import float_text, quote, quote_bytes, uint_text
from dlvsnap.kinds import SIGNED, Kind, kind_name
from dlvsnap.untrusted import visible


@dataclass(frozen=True)
class RawKey:
    """A key dlvsnap does not interpret (no type description, invalid UTF-8): its bytes."""

    data: bytes

    def __str__(self) -> str:
        return "0x" + self.data.hex() if len(self.data) <= 16 else f"0x{self.data[:16].hex()}…"


@dataclass(frozen=True)
class GoField:
    name: str
    offset: int
    type: GoType


@dataclass(frozen=True)
class GoType:
    """A Go type as the binary's DWARF describes it (dlvsnap.dwarf.TypeIndex): what a key
    of this type decodes to and how it prints. ``name`` is the type's name as reflect and
    %#v print it (``main.pair``, ``*main.T``, ``[2]int``, ``interface {}``); a part the
    description stops at (too deep, too large) has kind INVALID and decodes as bytes."""

    name: str
    kind: int  # reflect.Kind
    size: int
    fields: tuple[GoField, ...] = ()  # struct
    elem: GoType | None = None  # array
    length: int = 0  # array
    methods: bool = False  # interface: non-empty (an itab word), else interface {} / any

    @property
    def direct_iface(self) -> bool:
        """Whether an interface holds a value of this type in its data word itself rather
        than behind it: pointer-shaped types (cmd/compile's types.IsDirectIface)."""
        if self.kind in _POINTER_SHAPED:
            return True
        if self.kind == Kind.ARRAY:
            return self.length == 1 and self.elem is not None and self.elem.direct_iface
        if self.kind == Kind.STRUCT:
            return len(self.fields) == 1 and self.fields[0].type.direct_iface
        return False

    def to_json(self) -> dict[str, Any]:
        """The description a snapshot file carries (docs/snapshot-format.md, "types")."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "size": self.size}
        if self.kind == Kind.STRUCT:
            out["fields"] = [[f.name, f.offset, f.type.to_json()] for f in self.fields]
        if self.kind == Kind.ARRAY and self.elem is not None:
            out["elem"], out["len"] = self.elem.to_json(), self.length
        if self.kind == Kind.INTERFACE:
            out["methods"] = self.methods
        return out


_POINTER_SHAPED = frozenset([Kind.POINTER, Kind.UNSAFE_POINTER, Kind.CHAN, Kind.MAP, Kind.FUNC])


class TypeCatalog(Protocol):
    """Go types by the address of their runtime type descriptor in the process (the key
    type of a map type, the dynamic type of an interface): None for an address it does not
    know."""

    def at(self, addr: int) -> GoType | None: ...


@dataclass(frozen=True)
class StructKey:
    """A struct key: its fields' values, in order. ``raw`` is the key's own bytes (what
    memhash hashes); it is not part of the key's identity (a string field's data pointer
    differs between two copies of the same key)."""

    go: GoType = field(repr=False)
    values: tuple[KeyValue, ...]
    raw: bytes = field(default=b"", compare=False, repr=False)


@dataclass(frozen=True)
class ArrayKey:
    """An array key: its first MAX_ARRAY_ELEMS elements (``elems``), or for a byte array
    its bytes (``data``, all of them)."""

    go: GoType = field(repr=False)
    elems: tuple[KeyValue, ...]
    data: bytes | None = None
    raw: bytes = field(default=b"", compare=False, repr=False)


@dataclass(frozen=True)
class PointerKey:
    """A pointer (or channel, unsafe.Pointer) key: an address, never followed."""

    go: GoType = field(repr=False)
    addr: int


@dataclass(frozen=True)
class IfaceKey:
    """An interface key: its dynamic type and value. ``dyn`` None is a nil interface;
    ``type_addr`` is the type word when the binary's DWARF does not describe it (then
    ``dyn`` is None and ``value`` the data word's bytes)."""

    go: GoType = field(repr=False)
    dyn: GoType | None
    value: KeyValue
    type_addr: int = 0


KeyValue = int | float | bool | str | RawKey | StructKey | ArrayKey | PointerKey | IfaceKey | None

# Bounds on what a key shows: array elements decoded (and shown in JSON), shown in text;
# nesting shown in text; characters of a key in a text view.
MAX_ARRAY_ELEMS = 64
TEXT_ARRAY_ELEMS = 16
TEXT_KEY_CHARS = 120


def key_to_json(key: KeyValue) -> Any:
    """JSON form of a decoded key (docs/json-schema.md, "Keys"): numbers, bools and valid
    UTF-8 strings as themselves; NaN/Inf floats as ``{"float": "nan"}``; structs, arrays,
    pointers and interfaces tagged (``{"struct": "main.pair", "fields": [["a", 4], ...]}``);
    anything else as ``{"hex": "..."}``."""
    if isinstance(key, RawKey):
        return {"hex": key.data.hex()}
    if isinstance(key, float) and not math.isfinite(key):
        return {"float": repr(key)}
    if isinstance(key, StructKey | ArrayKey | PointerKey | IfaceKey):
        return _tagged_json(key)
    return key


def _tagged_json(key: StructKey | ArrayKey | PointerKey | IfaceKey) -> dict[str, Any]:
    if isinstance(key, StructKey):
        names = (f.name for f in key.go.fields)
        return {
            "struct": key.go.name,
            "fields": [[n, key_to_json(v)] for n, v in zip(names, key.values, strict=True)],
        }
    if isinstance(key, ArrayKey):
        out: dict[str, Any] = {"array": key.go.name, "len": key.go.length}
        if key.data is not None:
            out["hex"] = key.data.hex()
        else:
            out["elems"] = [key_to_json(v) for v in key.elems]
        return out
    if isinstance(key, PointerKey):
        return {"pointer": key.go.name, "addr": key.addr}
    out = {"interface": key.go.name, "type": None if key.dyn is None else key.dyn.name}
    out["value"] = key_to_json(key.value)
    if key.type_addr:
        out["type_addr"] = key.type_addr
    return out


def key_to_text(key: KeyValue) -> str:
    """A key as the text views show it: strings quoted, structs, arrays, pointers and
    interfaces as Go's %#v prints them inside a value (gosyntax), with every character that
    is not shown as itself or changes how the line reads escaped
    (dlvsnap.untrusted.visible)."""
    if key is None:
        return "?"
    if isinstance(key, str):  # as %#v quotes it, as inside a struct
        return visible(quote(key) if len(key) <= 40 else quote(key[:40]) + "…")
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, StructKey | ArrayKey | PointerKey | IfaceKey):
        return visible(gosyntax(key, TEXT_KEY_CHARS))
    return str(key)


def gosyntax(key: KeyValue, limit: int = 1 << 20) -> str:
    """A key as fmt's %#v prints it inside a value (``main.pair{a:4, b:"s4"}``,
    ``(*main.T)(0xc000012345)``, ``[2]int{4, 5}``; a pointer is an address, never
    followed), with arrays past TEXT_ARRAY_ELEMS elements cut (``…``), and the whole cut
    to ``limit`` characters."""
    out = TextBudget(limit)
    _go(key, None, out)
    text = "".join(out.parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class TextBudget:
    """Text being written, up to a limit (past it, nothing more is added)."""

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.left = limit

    def add(self, s: str) -> None:
        self.parts.append(s)
        self.left -= len(s)


def _go(v: KeyValue, t: GoType | None, out: TextBudget) -> None:
    """Write ``v``, of type ``t`` (what a leaf needs: unsigned, float32, string)."""
    if out.left <= 0:
        return
    if isinstance(v, StructKey):
        out.add(v.go.name + "{")
        for i, (f, x) in enumerate(zip(v.go.fields, v.values, strict=True)):
            out.add((", " if i else "") + f.name + ":")
            _go(x, f.type, out)
        out.add("}")
    elif isinstance(v, ArrayKey):
        out.add(v.go.name + "{")
        items: list[KeyValue] = list(v.data) if v.data is not None else list(v.elems)
        for i, x in enumerate(items[:TEXT_ARRAY_ELEMS]):
            out.add(", " if i else "")
            _go(x, v.go.elem, out)
        if v.go.length > TEXT_ARRAY_ELEMS:
            out.add(", …")
        out.add("}")
    elif isinstance(v, PointerKey):
        out.add(f"({v.go.name})({hex(v.addr) if v.addr else 'nil'})")
    elif isinstance(v, IfaceKey):
        if v.type_addr:
            out.add(f"{v.go.name}(<type {v.type_addr:#x}>)")
        elif v.dyn is None:
            out.add(f"{v.go.name}(nil)")
        else:
            _go(v.value, v.dyn, out)
    else:
        out.add(_leaf(v, t))


def _leaf(v: KeyValue, t: GoType | None) -> str:
    kind = t.kind if t is not None else Kind.INVALID
    if isinstance(v, bool):
        text = "true" if v else "false"
    elif isinstance(v, int):
        text = uint_text(v) if kind in SIGNED and not SIGNED[kind] else str(v)
    elif isinstance(v, float):
        text = float_text(v, 32 if kind == Kind.FLOAT32 else 64)
    elif isinstance(v, str):
        text = quote(v)
    elif isinstance(v, RawKey):
        text = quote_bytes(v.data) if kind == Kind.STRING else str(v)
    else:
        text = "?"  # not read (unreadable memory, past the key's budget)
    return text


_text_view: Callable[[object], str] | None = None


def set_text_view(view: Callable[[object], str]) -> None:
    """What ``str()`` of a MapSnapshot, MapDiff, DeleteEvent or Summary returns (dlvsnap.render.text
    calls this when imported)."""
    global _text_view  # noqa: PLW0603 (one hook, set once by the text renderer)
    _text_view = view


def _as_text(obj: object) -> str:
    """The text view, once a renderer installed it; the dataclass's repr until then."""
    return repr(obj) if _text_view is None else _text_view(obj)


# Slot states, as named in the JSON schema.
FULL = "full"
EMPTY = "empty"  # swiss ctrlEmpty
DELETED = "deleted"  # swiss tombstone
EMPTY_ONE = "emptyOne"  # classic
EMPTY_REST = "emptyRest"
EVACUATED_X = "evacuatedX"
EVACUATED_Y = "evacuatedY"
EVACUATED_EMPTY = "evacuatedEmpty"
UNLINKED = "unlinked"  # the slot's bucket/group is not reachable from the map (on that side)

# One character per slot state: the `snapshot` record of `watch --json`
# (docs/json-schema.md) and a snapshot file's `state.states` (docs/snapshot-format.md).
# Part of both formats: a state never changes its character.
STATE_CHARS = {
    FULL: "F",
    EMPTY: "E",
    DELETED: "D",
    EMPTY_ONE: "o",
    EMPTY_REST: "r",
    EVACUATED_X: "X",
    EVACUATED_Y: "Y",
    EVACUATED_EMPTY: "Z",
    UNLINKED: "U",
}
UNKNOWN_CHAR = "?"  # a byte that is no state of the layout, or a place no slot fills
SLOTS_PER_GROUP = 8  # swiss groups and classic buckets both hold 8 slots

# The header field that holds the map's hash seed, per implementation (maps.Map.seed,
# hmap.hash0): re-randomised when a map becomes empty.
SEED_FIELD = {"swiss": "seed", "classic": "hash0"}
# Header and table fields that hold an address (dirPtr, buckets, groups_addr, extra...):
# the text view and the report print them in hex, as Go and Delve print pointers.
_ADDRESS_SUFFIXES = ("Ptr", "buckets", "_addr", "extra")


def is_address_field(name: str) -> bool:
    return name.endswith(_ADDRESS_SUFFIXES)


@dataclass(frozen=True, slots=True)
class SlotLoc:
    """A stable slot location.

    swiss: ``table`` is the table's first directory index (-1 for a small map), ``group``
    the group; classic: ``table`` is -1, ``group`` the bucket index, ``overflow`` the
    position in its overflow chain (0 = the bucket itself) and ``old`` marks oldbuckets.
    """

    table: int
    group: int
    slot: int
    overflow: int = 0
    old: bool = False
    classic: bool = False

    def sort_key(self) -> tuple[int, int, int, int, int]:
        return (int(self.old), self.table, self.group, self.overflow, self.slot)

    @property
    def group_label(self) -> str:
        """The label of the slot's group or bucket (docs/json-schema.md): ``t0/g3`` (a
        table's group), ``g0`` (a small map's), ``b5``, ``b5+1`` (its first overflow
        bucket), ``old2`` (an old bucket while growing)."""
        if self.classic:
            chain = f"+{self.overflow}" if self.overflow else ""
            return f"{'old' if self.old else 'b'}{self.group}{chain}"
        if self.table < 0:
            return f"g{self.group}"
        return f"t{self.table}/g{self.group}"

    def __str__(self) -> str:
        """The slot's label: its group's label and ``/s`` and its index (``t0/g3/s5``)."""
        return f"{self.group_label}/s{self.slot}"

    def describe(self) -> str:
        if self.classic:
            where = f"{'oldbucket' if self.old else 'bucket'} {self.group}"
            if self.overflow:
                where += f" overflow {self.overflow}"
            return f"{where} slot {self.slot}"
        if self.table < 0:
            return f"group {self.group} slot {self.slot}"
        return f"table {self.table} group {self.group} slot {self.slot}"


@dataclass(frozen=True, slots=True)
class Slot:
    loc: SlotLoc
    byte: int  # the raw ctrl (swiss) or tophash (classic) byte
    state: str
    key: KeyValue = None  # decoded for full slots


@dataclass(frozen=True)
class KeyType:
    """What dlvsnap knows of the key/elem types, from the map's type descriptor."""

    kind: int  # reflect.Kind (dlvsnap.kinds.Kind)
    size: int
    indirect: bool
    go: GoType | None = None  # from the binary's DWARF, for keys beyond scalars and strings
    pointers: bool = False  # the type holds pointers (abi.Type.PtrBytes != 0)

    @property
    def kind_name(self) -> str:
        return kind_name(self.kind)


@dataclass(frozen=True)
class MapType:
    """The decoded type descriptor of one map type (abi.MapType, maptype...).

    Where the keys and elems of slot i are, relative to its group (swiss) or bucket
    (classic): ``keys_off + i*key_stride`` and ``elems_off + i*elem_stride``.
    """

    addr: int
    key: KeyType
    elem: KeyType
    group_size: int  # swiss group / classic bucket size
    keys_off: int
    key_stride: int
    elems_off: int
    elem_stride: int
    flags: int
    hasher: int = 0  # the Hasher func value (a pointer to the function's code pointer)

    @property
    def entry_bytes(self) -> int:
        """What one entry needs: key size + elem size."""
        return self.key.size + self.elem.size

    @property
    def indirect_bytes(self) -> int:
        """Bytes allocated on their own for one entry (keys/elems over 128 bytes)."""
        return (self.key.size if self.key.indirect else 0) + (
            self.elem.size if self.elem.indirect else 0
        )

    @property
    def group_pointers(self) -> bool:
        """Whether a group/bucket holds pointers, so that the garbage collector scans it:
        a slot's key or elem has pointers or is stored by pointer (cmd/compile's
        reflectdata.MapGroupType / MapBucketType; a classic bucket's overflow word is a
        uintptr otherwise)."""
        k, e = self.key, self.elem
        return k.indirect or e.indirect or k.pointers or e.pointers


@dataclass(frozen=True)
class Table:
    index: int
    addr: int
    used: int
    capacity: int
    growth_left: int
    local_depth: int
    groups_addr: int
    n_groups: int

    @property
    def tombstones(self) -> int:
        # capacity*7/8 - used - growthLeft (internal/runtime/maps/table.go, tombstones())
        return self.capacity * 7 // 8 - self.used - self.growth_left if self.capacity > 8 else 0


# The parts a map's bytes are counted in (Memory, TypeSizes): held is their sum.
MEMORY_PARTS = ("header", "directory", "tables", "groups", "indirect", "overflow", "old")


@dataclass(frozen=True)
class TypeSizes:
    """The parts of Memory by their types' sizes: the bytes the map's allocations asked
    for, before the allocator rounded each one up."""

    header: int = 0
    directory: int = 0
    tables: int = 0
    groups: int = 0
    indirect: int = 0
    overflow: int = 0
    old: int = 0

    @property
    def total(self) -> int:
        return sum(getattr(self, part) for part in MEMORY_PARTS)


@dataclass(frozen=True)
class Memory:
    """Bytes the map holds, and bytes its live entries need.

    Each part counts the heap its allocations take as the Go runtime allocates them (size
    classes, malloc headers, pages: dlvsnap.alloc), each allocation the map owns once, so
    that ``held`` is what the map adds to runtime.MemStats.HeapAlloc (docs/memory-
    accounting.md). ``structural`` holds the same parts by their types' sizes (None: the
    parts are type sizes, no rounding known); ``allocations`` counts the heap objects
    (what the map adds to MemStats.HeapObjects).
    """

    header: int  # classic: hmap, mapextra and mapextra's overflow slices; swiss: Map
    directory: int
    tables: int
    groups: int  # swiss: every table's group array (a small map's group); classic: buckets
    indirect: int  # separately allocated keys/elems of live entries
    live_entries: int
    entry_bytes: int  # key + elem size of one entry
    overflow: int = 0  # classic: overflow buckets outside the bucket arrays
    old: int = 0  # classic: the old bucket array while growing
    structural: TypeSizes | None = None
    allocations: int = 0

    @property
    def held(self) -> int:
        return sum(getattr(self, part) for part in MEMORY_PARTS)

    @property
    def structural_bytes(self) -> int:
        """The parts' type sizes added up (``held`` when they are not known apart)."""
        return self.held if self.structural is None else self.structural.total

    @property
    def needed(self) -> int:
        return self.live_entries * self.entry_bytes

    def to_json(self) -> dict[str, int]:
        return {
            "held_bytes": self.held,
            "needed_bytes": self.needed,
            "header_bytes": self.header,
            "directory_bytes": self.directory,
            "table_bytes": self.tables,
            "group_bytes": self.groups,
            "indirect_bytes": self.indirect,
            "overflow_bytes": self.overflow,
            "oldbucket_bytes": self.old,
            "live_entries": self.live_entries,
            "structural_bytes": self.structural_bytes,
            "allocations": self.allocations,
        }


# Row keys (Rows.row_keys): one int64 per group/bucket that orders rows like SlotLoc.sort_key.
_OLD_SHIFT, _TABLE_SHIFT, _INDEX_SHIFT = 62, 41, 14
MAX_OVERFLOW = (1 << _INDEX_SHIFT) - 1


@dataclass(frozen=True, eq=False)
class Rows:
    """The groups (swiss) or buckets (classic) a snapshot read: one row each, columnar.

    ``ctrl[r*8 + i]`` and ``keys[r*8 + i]`` are slot i of row r. ``keys`` is a numeric
    array for integer, float and bool keys (meaningful only where the slot is full), an
    object array of decoded keys otherwise (None where not full).
    """

    classic: bool
    table: NDArray[np.int32]  # swiss: first directory index of the table, -1 small map
    index: NDArray[np.int64]  # group / bucket index
    overflow: NDArray[np.int32]  # classic: position in the overflow chain
    old: NDArray[np.bool_]  # classic: in oldbuckets
    addr: NDArray[np.uint64]  # where the group/bucket is
    ctrl: NDArray[np.uint8]
    keys: NDArray[Any]
    slots_per_row: int = SLOTS_PER_GROUP

    def __len__(self) -> int:
        return len(self.table)

    @staticmethod
    def concat(parts: list[Rows], classic: bool) -> Rows:
        if not parts:
            z = np.zeros(0, dtype=np.int64)
            return Rows(
                classic,
                z.astype(np.int32),
                z,
                z.astype(np.int32),
                z.astype(np.bool_),
                z.astype(np.uint64),
                z.astype(np.uint8),
                np.zeros(0, dtype=object),
            )
        if len(parts) == 1:
            return parts[0]
        return Rows(
            classic,
            *(np.concatenate([getattr(p, f) for p in parts]) for f in _ROW_FIELDS),  # type: ignore[arg-type]
        )

    def take(self, rows: NDArray[np.int64]) -> Rows:
        """These rows (in this order), with their slots."""
        n = self.slots_per_row
        slot_idx = (rows[:, None] * n + np.arange(n)).reshape(-1)
        return Rows(
            self.classic,
            self.table[rows],
            self.index[rows],
            self.overflow[rows],
            self.old[rows],
            self.addr[rows],
            self.ctrl[slot_idx],
            self.keys[slot_idx],
        )

    def row_keys(self) -> NDArray[np.int64]:
        return (
            (self.old.astype(np.int64) << _OLD_SHIFT)
            | ((self.table.astype(np.int64) + 1) << _TABLE_SHIFT)
            | (self.index << _INDEX_SHIFT)
            | self.overflow.astype(np.int64)
        )

    def loc(self, pos: int) -> SlotLoc:
        r, i = divmod(pos, self.slots_per_row)
        if self.classic:
            return SlotLoc(
                -1, int(self.index[r]), i, int(self.overflow[r]), bool(self.old[r]), True
            )
        return SlotLoc(int(self.table[r]), int(self.index[r]), i)

    def group_label(self, row: int) -> str:
        """The label of row ``row``'s group or bucket (SlotLoc.group_label)."""
        return self.loc(row * self.slots_per_row).group_label

    def key(self, pos: int) -> KeyValue:
        k = self.keys[pos]
        return k.item() if isinstance(k, np.generic) else k  # type: ignore[no-any-return]

    def keys_at(self, positions: NDArray[np.int64]) -> list[KeyValue]:
        return self.keys[positions].tolist()  # type: ignore[no-any-return]


_ROW_FIELDS = ("table", "index", "overflow", "old", "addr", "ctrl", "keys")


@dataclass(frozen=True, eq=False)
class MapSnapshot:
    """What dlvsnap read of one map at one stop.

    A full snapshot holds every group/bucket; a ``partial`` one (``dlvsnap watch`` around a
    delete) holds the header, every table header (swiss) and the groups/buckets the delete
    can touch: its probe groups or bucket chain. ``states[b]`` names control byte b.
    """

    impl: str  # "swiss" | "classic"
    layout: str
    addr: int
    header: dict[str, Any]
    count: int
    map_type: MapType
    tables: tuple[Table, ...]
    rows: Rows
    states: tuple[str, ...]
    memory: Memory
    tombstones: int = 0
    warnings: tuple[str, ...] = ()  # broken invariants: a layout that does not fit, or a torn read
    # What determines the rows and their order (tables and their group counts; bucket
    # arrays and chain lengths): two snapshots with equal shapes list the same rows in the
    # same order.
    shape: tuple[object, ...] = ()
    partial: bool = False
    n_tables: int = 0  # swiss: distinct tables (a partial snapshot lists only its probe's)

    @functools.cached_property
    def full_mask(self) -> NDArray[np.bool_]:
        is_full = np.array([s == FULL for s in self.states], dtype=np.bool_)
        return is_full[self.rows.ctrl]

    def state(self, pos: int) -> str:
        return self.states[int(self.rows.ctrl[pos])]

    @property
    def seed(self) -> int:
        """The map's hash seed (the header field SEED_FIELD names)."""
        return int(self.header[SEED_FIELD[self.impl]])

    def group_labels(self) -> list[str]:
        """The label of every group/bucket read, in row order."""
        return [self.rows.group_label(r) for r in range(len(self.rows))]

    def state_chars(self) -> str:
        """One character per slot read (STATE_CHARS), in row order."""
        table = bytes(ord(STATE_CHARS.get(st, UNKNOWN_CHAR)) for st in self.states)
        return self.rows.ctrl.tobytes().translate(table).decode()

    def slot(self, pos: int) -> Slot:
        st = self.state(pos)
        key = self.rows.key(pos) if st == FULL else None
        return Slot(self.rows.loc(pos), int(self.rows.ctrl[pos]), st, key)

    @functools.cached_property
    def slots(self) -> tuple[Slot, ...]:
        """Every slot read, as objects (for small maps and tests: prefer the columns)."""
        return tuple(self.slot(p) for p in range(len(self.rows.ctrl)))

    def live_keys(self) -> list[KeyValue]:
        if self.partial:
            raise ValueError("a partial snapshot does not hold every key")
        return self.rows.keys_at(np.flatnonzero(self.full_mask))

    def __str__(self) -> str:
        return _as_text(self)


@dataclass(frozen=True, slots=True)
class SlotChange:
    """One slot whose control byte changed. A slot whose group/bucket stopped (or started)
    being reachable from the map is ``unlinked`` on that side, with no byte."""

    loc: SlotLoc
    before_byte: int | None
    after_byte: int | None
    before_state: str
    after_state: str
    key: KeyValue  # the slot's decoded key before the change (None unless it was full)
    after_key: KeyValue = None  # the key after the change (None unless it is full)

    def to_json(self) -> dict[str, Any]:
        loc = self.loc
        return {
            "slot": str(loc),
            "table": loc.table if loc.table >= 0 and not loc.classic else None,
            "group": loc.group if not loc.classic else None,
            "bucket": loc.group if loc.classic else None,
            "overflow": loc.overflow if loc.classic else None,
            "old": loc.old if loc.classic else None,
            "index": loc.slot,
            "before_state": self.before_state,
            "after_state": self.after_state,
            "before_byte": self.before_byte,
            "after_byte": self.after_byte,
            "key": key_to_json(self.key),
            "after_key": key_to_json(self.after_key),
        }


@dataclass(frozen=True)
class MapDiff:
    changes: tuple[SlotChange, ...]
    count_before: int
    count_after: int
    header_changes: dict[str, tuple[Any, Any]]
    table_changes: dict[int, dict[str, tuple[int, int]]]
    tables_added: tuple[int, ...] = ()
    tables_removed: tuple[int, ...] = ()
    moved: tuple[int, int] | None = None  # header address before/after, if it moved
    partial: bool = False  # compares only the groups/buckets the delete could touch

    @property
    def reseeded(self) -> bool:
        return any(f in self.header_changes for f in SEED_FIELD.values())

    def left_full(self) -> list[SlotChange]:
        return [c for c in self.changes if c.before_state == FULL and c.after_state != FULL]

    def __str__(self) -> str:
        return _as_text(self)


@dataclass
class Location:
    function: str
    file: str
    line: int

    def __str__(self) -> str:
        base = self.file.rsplit("/", 1)[-1]
        return f"{self.function} {base}:{self.line}"


@dataclass
class DeleteEvent:
    seq: int
    op: str  # "delete" | "clear" | "assign" (with --ops)
    entry: str  # runtime function that was hit
    via: str  # reflect entry point, if the call came through reflect
    goroutine: int
    location: Location
    key: KeyValue
    key_decoded: bool
    before: MapSnapshot
    after: MapSnapshot
    diff: MapDiff
    warnings: tuple[str, ...] = ()  # about this event (a probe that disagreed...)
    map: str = ""  # which watched map, as the user named it, when several are ("": one)

    def all_warnings(self) -> tuple[str, ...]:
        return self.before.warnings + self.after.warnings + self.warnings

    def __str__(self) -> str:
        return _as_text(self)


@dataclass(frozen=True)
class FinalSnapshot:
    """A watched map where the program reached ``--until`` LOCATION. ``how``: ``named``
    (its expression named it there), ``last_seen`` (read at the header the watch last saw:
    the expression names nothing there), ``none`` (nothing read: ``note`` says why; else
    ``note`` says how the header was found when it matters)."""

    snapshot: MapSnapshot | None
    how: str
    note: str = ""

    @property
    def capacity(self) -> int:
        """Slots in the map's groups (swiss) or buckets, overflow buckets included
        (classic; the old buckets of a grow left out)."""
        s = self.snapshot
        if s is None:
            return 0
        return int(np.count_nonzero(~s.rows.old)) * s.rows.slots_per_row


@dataclass
class Summary:
    deletes: int = 0
    clears: int = 0
    assigns: int = 0
    keys_removed: int = 0
    keys_added: int = 0
    absent_deletes: int = 0
    first: MapSnapshot | None = None  # before the first delete
    last: MapSnapshot | None = None  # after the last delete
    exit_status: int | None = None
    stopped_early: bool = False
    # how the watched map's calls stopped the program in the end: "watchpoint" or
    # "breakpoints" ("" when not said); ``mode_why``: why not the mode asked for
    mode: str = ""
    mode_why: str = ""
    missed: int = 0  # watched calls started while another was in flight (not recorded)
    # where the watch ended: "exit" (the program's end), "max_events", "until" (the program
    # reached --until LOCATION: ``ended_at``, by goroutine ``ended_goroutine``), "stop" (a
    # stop of the user's: --connect, --attach); "" while it runs
    ended: str = ""
    ended_at: Location | None = None
    ended_goroutine: int = 0
    final: FinalSnapshot | None = None  # --until: the map where the program reached it
    # the program after a watch that ended before it: "ran_on" (launched: ran to its end
    # unwatched, ``exit_status`` is that end's), "killed" (--kill), "interrupted" (Ctrl-C
    # while it ran on: killed), "released" (--attach: running), "stopped" (--connect: left
    # where it is); "" when not said
    after: str = ""
    # the answer to "is the memory freed?" and the fix on this release (dlvsnap.advice), from
    # the map at the end (``final``'s, else ``last``): "" when no snapshot was taken
    advice: str = ""

    @property
    def tombstones(self) -> int:
        return self.last.tombstones if self.last else 0

    @property
    def events(self) -> int:
        return self.deletes + self.clears + self.assigns

    def __str__(self) -> str:
        return _as_text(self)

    def count(self, op: str, count_before: int, count_after: int) -> None:
        """One more event of ``op`` that took the map's count from before to after."""
        if op == "assign":
            self.assigns += 1
            self.keys_added += max(0, count_after - count_before)
            return
        if op == "clear":
            self.clears += 1
        else:
            self.deletes += 1
            self.absent_deletes += count_after == count_before
        self.keys_removed += max(0, count_before - count_after)
