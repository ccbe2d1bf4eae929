"""What the census reads of an object of each type: a plan per DWARF type, made once.

A plan lists the words of the type where a map can be reached from: a map itself, a
pointer, a slice, an interface, or a large inline array, each at its offset in the object
with the path it adds (``.sessions``, ``.byID[2]``) and how many steps that path counts.
Structs and small arrays are flattened into their parts, so one object is one read and
one pass over its words. Anything that cannot lead to a map (strings, numbers, a struct
of those, a pointer to one) is left out of the plan, and a type whose plan is empty is
never read at all. Pure: works from the binary's DWARF (dwarf.TypeIndex), reads no memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from dlvsnap.dwarf import TypeDie, TypeIndex
from dlvsnap.kinds import Kind

# An inline array with more elements than this (times the edges of one element) is not
# flattened into its parent's plan: it is walked as an object of its own.
FLATTEN_EDGES = 64
_TYPEDEF_HOPS = 16
_MAX_DEPTH = 32  # structs in structs: deeper parts are not planned


class Shape(IntEnum):
    """What a type is, as far as the census cares."""

    LEAF = 0  # holds no pointer the census follows (numbers, strings, funcs, chans)
    MAP = 1
    POINTER = 2
    SLICE = 3
    EFACE = 4  # interface {} / any: (type word, data word)
    IFACE = 5  # an interface with methods: (itab word, data word)
    STRUCT = 6
    ARRAY = 7
    UNSAFE = 8  # unsafe.Pointer: no type to follow
    CHAN = 9  # not followed (its buffer's elements are not walked)
    FUNC = 10  # not followed (a closure's captured variables have no DWARF type)


class Edge(IntEnum):
    MAP = 1  # the word is a map header's address
    POINTER = 2  # the word points to one ``target``
    SLICE = 3  # (array, len, cap) of ``target`` elements
    EFACE = 4
    IFACE = 5
    ARRAY = 6  # ``count`` inline ``target`` elements, walked as an object of their own
    NOTE = 7  # a word the walk does not follow (a chan, a func, an unsafe.Pointer): counted


@dataclass(frozen=True)
class PlanEdge:
    off: int
    kind: Edge
    target: int  # a DIE offset: the map type, pointee, element type; -1 for interfaces
    label: str  # the path it adds: ".cache", ".byID[2]" ("" for the object itself)
    steps: int  # how many steps that path counts (each .f, [i] and .(T) is one)
    count: int = 0  # ARRAY: the element count


# what the walk counts and does not follow, by what it is (in a struct that can lead to a map)
_NOT_FOLLOWED = {
    Shape.CHAN: "channels (their buffers are not walked)",
    Shape.FUNC: "func values (closures' captured variables have no type)",
    Shape.UNSAFE: "unsafe.Pointer words (no type to follow)",
}
# sync/atomic.Pointer[T]: followed as a *T (its unsafe.Pointer word says nothing of T)
_ATOMIC_POINTER = "sync/atomic.Pointer["
# internal/sync's HashTrieMap (sync.Map from Go 1.24): a node is an entry or an indirect
# node as a flag in it says, which a type-by-type walk does not follow
_SYNC_NODE = "internal/sync.node["
_HASH_TRIE = "internal/sync.HashTrieMap["
_NOT_FOLLOWED_NODE = "sync.Map entries of Go 1.24+ (a HashTrieMap's nodes)"
_SIMPLE_EDGES = {Shape.MAP: Edge.MAP, Shape.EFACE: Edge.EFACE, Shape.IFACE: Edge.IFACE}


@dataclass(frozen=True)
class Plan:
    die: int
    name: str
    size: int
    edges: tuple[PlanEdge, ...]


def _named_shape(d: TypeDie) -> Shape | None:
    """Maps, chans and funcs: their own typedef says what they are (and names a map's key
    and element types)."""
    if d.kind == Kind.MAP or d.name.startswith("map["):
        return Shape.MAP
    if d.kind == Kind.CHAN or d.name.startswith(("chan ", "<-chan ")):
        return Shape.CHAN
    if d.kind == Kind.FUNC or d.tag == "DW_TAG_subroutine_type":
        return Shape.FUNC
    return None


_STRUCT_SHAPES = {"runtime.eface": Shape.EFACE, "runtime.iface": Shape.IFACE}


def _tag_shape(d: TypeDie) -> Shape:
    """What a type DIE other than a typedef is."""
    if d.tag == "DW_TAG_pointer_type":
        unsafe = d.target < 0 or d.kind == Kind.UNSAFE_POINTER or d.name == "unsafe.Pointer"
        return Shape.UNSAFE if unsafe else Shape.POINTER
    if d.tag == "DW_TAG_array_type":
        return Shape.ARRAY
    if d.tag != "DW_TAG_structure_type" or d.kind == Kind.STRING:
        return Shape.LEAF
    if d.kind == Kind.SLICE:
        return Shape.SLICE
    return _STRUCT_SHAPES.get(d.name, Shape.STRUCT)


class Plans:
    """Plans for the types of one binary's DWARF, made when first asked for."""

    def __init__(self, index: TypeIndex) -> None:
        self.index = index
        self.ptr_size = index.ptr_size
        self._plans: dict[int, Plan | None] = {}
        self._reach: dict[int, bool] = {}
        self._shape: dict[int, tuple[Shape, int]] = {}

    def name(self, die: int) -> str:
        d = self.index.dies.get(die)
        return d.name if d is not None else "?"

    def shape(self, die: int) -> tuple[Shape, int]:
        """What ``die`` is, and the DIE that says so (typedefs followed; a map's or an
        interface's own typedef is kept: it names the map's key and element types)."""
        got = self._shape.get(die)
        if got is None:
            got = self._shape[die] = self._find_shape(die)
        return got

    def _find_shape(self, die: int) -> tuple[Shape, int]:
        dies = self.index.dies
        off = die
        for _ in range(_TYPEDEF_HOPS):
            d = dies.get(off)
            if d is None:
                break
            named = _named_shape(d)
            if named is not None:
                return named, off
            if d.tag != "DW_TAG_typedef":
                return _tag_shape(d), off
            off = d.target
        return Shape.LEAF, off

    def size(self, die: int) -> int:
        """The type's size in bytes (-1 when the DWARF does not say)."""
        shape, off = self.shape(die)
        if shape in (Shape.MAP, Shape.POINTER, Shape.UNSAFE, Shape.CHAN, Shape.FUNC):
            return self.ptr_size
        if shape in (Shape.EFACE, Shape.IFACE):
            return 2 * self.ptr_size
        d = self.index.dies.get(off)
        return d.size if d is not None else -1

    def elem(self, die: int) -> int:
        """A slice's, array's or pointer's element type (a DIE offset; -1 if unknown)."""
        shape, off = self.shape(die)
        d = self.index.dies[off]
        if shape == Shape.SLICE:
            if d.elem >= 0:
                return d.elem
            array = next((t for n, _, t in d.members if n == "array"), -1)
            p = self.index.dies.get(array)
            return p.target if p is not None else -1
        return d.target

    def key_elem(self, die: int) -> tuple[int, int]:
        """A map type's key and element types (DIE offsets; -1 if the DWARF does not say)."""
        _, off = self.shape(die)
        d = self.index.dies[off]
        return d.key, d.elem

    def runtime_type(self, die: int) -> int | None:
        """The offset from runtime.types of the type's runtime type descriptor."""
        off = die
        for _ in range(_TYPEDEF_HOPS):
            rt = self.index.runtime_of.get(off)
            if rt is not None:
                return rt
            d = self.index.dies.get(off)
            if d is None or d.tag != "DW_TAG_typedef":
                return None
            off = d.target
        return None

    def direct(self, die: int) -> bool:
        """Whether an interface holding this type keeps the value in its data word
        (pointer-shaped types, as cmd/compile's types.IsDirectIface says)."""
        shape, off = self.shape(die)
        if shape in (Shape.MAP, Shape.POINTER, Shape.UNSAFE, Shape.CHAN, Shape.FUNC):
            return True
        d = self.index.dies[off]
        if shape == Shape.ARRAY:
            return d.count == 1 and self.direct(d.target)
        if shape == Shape.STRUCT:
            return len(d.members) == 1 and self.direct(d.members[0][2])
        return False

    def reaches(self, die: int) -> bool:
        """Whether a value of this type can lead to a map (an interface always can). A
        type met again while its answer is being worked out counts as reaching one: that
        can only make the walk read more, never miss a map."""
        got = self._reach.get(die)
        if got is not None:
            return got
        self._reach[die] = True
        shape, off = self.shape(die)
        d = self.index.dies.get(off)
        if shape in (Shape.MAP, Shape.EFACE, Shape.IFACE):
            r = True
        elif shape == Shape.STRUCT and d is not None and d.name.startswith(_HASH_TRIE):
            r = True  # not walked, but counted (_flatten)
        elif shape == Shape.POINTER:
            r = self.reaches(d.target) if d is not None else False
        elif shape in (Shape.SLICE, Shape.ARRAY):
            e = self.elem(die)
            r = e >= 0 and self.reaches(e)
        elif shape == Shape.STRUCT and d is not None:
            r = any(t >= 0 and self.reaches(t) for _, _, t in d.members)
        else:
            r = False
        self._reach[die] = r
        return r

    def plan(self, die: int) -> Plan | None:
        """The type's plan; None when no value of it can lead to a map."""
        if die in self._plans:
            return self._plans[die]
        got: Plan | None = None
        if self.reaches(die):
            edges: list[PlanEdge] = []
            self._flatten(die, 0, "", out=edges, steps=0, depth=0)
            if edges:
                got = Plan(die, self.name(die), self.size(die), tuple(edges))
        self._plans[die] = got
        return got

    def _flatten(
        self, die: int, off: int, label: str, *, out: list[PlanEdge], steps: int, depth: int
    ) -> None:
        """The edges of a value of type ``die`` at ``off`` in the object, into ``out``."""
        if not self.reaches(die) or depth > _MAX_DEPTH:
            return
        shape, at = self.shape(die)
        d = self.index.dies[at]
        simple = _SIMPLE_EDGES.get(shape)
        if simple is not None:
            out.append(PlanEdge(off, simple, at if shape == Shape.MAP else -1, label, steps))
        elif shape in (Shape.POINTER, Shape.SLICE):
            target = self.elem(die)
            if self.size(target) > 0:
                kind = Edge.POINTER if shape == Shape.POINTER else Edge.SLICE
                out.append(PlanEdge(off, kind, target, label, steps))
        elif shape == Shape.STRUCT and d.name.startswith(_HASH_TRIE):
            root = next((o for n, o, _ in d.members if n == "root"), 0)
            out.append(PlanEdge(off + root, Edge.NOTE, -1, _NOT_FOLLOWED_NODE, 0))
        elif shape == Shape.STRUCT and d.name.startswith(_ATOMIC_POINTER):
            self._atomic_pointer(d, off, label, out=out, steps=steps)
        elif shape == Shape.STRUCT:
            for name, moff, t in d.members:
                note = _NOT_FOLLOWED.get(self.shape(t)[0]) if t >= 0 else None
                if note is not None:
                    out.append(PlanEdge(off + moff, Edge.NOTE, -1, note, 0))
                elif t >= 0:
                    self._flatten(
                        t, off + moff, f"{label}.{name}", out=out, steps=steps + 1, depth=depth + 1
                    )
        elif shape == Shape.ARRAY:
            self._flatten_array(d, off, label, out=out, steps=steps, depth=depth)

    def _atomic_pointer(
        self, d: TypeDie, off: int, label: str, *, out: list[PlanEdge], steps: int
    ) -> None:
        """sync/atomic.Pointer[T]: its word ``v`` is an unsafe.Pointer that points to a T
        (the type says so in its ``_ [0]*T`` field), so it is followed as a *T; the path
        reads as Go writes it, ``.Load()``."""
        v = next((o for n, o, _ in d.members if n == "v"), None)
        marker = next((t for n, _, t in d.members if n == "_" and self._is_elem_pointer(t)), -1)
        if v is None or marker < 0:
            return
        target = self.index.dies[self.index.dies[marker].target].target  # [0]*T -> *T -> T
        name = self.name(target)
        if name.startswith(_SYNC_NODE):
            out.append(PlanEdge(off + v, Edge.NOTE, -1, _NOT_FOLLOWED_NODE, 0))
        elif self.reaches(target) and self.size(target) > 0:
            out.append(PlanEdge(off + v, Edge.POINTER, target, f"{label}.Load()", steps + 1))

    def _is_elem_pointer(self, die: int) -> bool:
        """Whether ``die`` is a [0]*T (atomic.Pointer's marker of T)."""
        d = self.index.dies.get(die)
        if d is None or d.tag != "DW_TAG_array_type":
            return False
        p = self.index.dies.get(d.target)
        return p is not None and p.tag == "DW_TAG_pointer_type" and p.target >= 0

    def _flatten_array(
        self, d: TypeDie, off: int, label: str, *, out: list[PlanEdge], steps: int, depth: int
    ) -> None:
        """An inline array: its elements' edges, one per element while they are few, else
        one edge that walks the array as an object of its own."""
        esize = self.size(d.target)
        if esize <= 0 or d.count <= 0:
            return
        inner: list[PlanEdge] = []
        self._flatten(d.target, 0, "", out=inner, steps=0, depth=depth + 1)
        if not inner:
            return
        if d.count * len(inner) > FLATTEN_EDGES:
            out.append(PlanEdge(off, Edge.ARRAY, d.target, label, steps, d.count))
            return
        for i in range(d.count):
            for x in inner:
                out.append(
                    PlanEdge(
                        off + i * esize + x.off,
                        x.kind,
                        x.target,
                        f"{label}[{i}]{x.label}",
                        steps + 1 + x.steps,
                        x.count,
                    )
                )
