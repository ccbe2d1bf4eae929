"""The census walk: from the roots, every object that can lead to a map, each read once,
in order of path length, so each map is met first under its shortest path.

Objects are (address, type, element count). A round takes every object waiting at the
shortest distance, groups them by type and reads each group in one bulk read
(``MemoryReader.read_each``: one process_vm_readv call per 1,024 objects live, slices of
one mmap for a core; a backing array in one read), then follows the words the type's plan
names with numpy, a column at a time. Distance is the number of steps in the path (each ``.f``,
``[i]``, ``[KEY]`` and ``.(T)`` is one), so this is Dijkstra with small integer weights:
an object found again by a shorter path moves to that path before it is read. Maps are
keyed by their header's address alone, so a map reached by two paths is listed once.

Pure: reads memory through a MemoryReader, types through plan.Plans and a function from
a runtime type's address to its DWARF type; speaks no Delve.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from dlvsnap.census.plan import Edge, Plan, PlanEdge, Plans, Shape
from dlvsnap.errors import MemoryReadError
from dlvsnap.memory import MemoryReader

# An object (a slice's backing array, an inline array) larger than this is not read: a
# word that only looks like a slice (a dead stack slot) must not make the walk read GBs.
MAX_OBJECT = 256 << 20
# Where a pointer can point: not the first page, not past user space (the walk meets
# words that only look like pointers: dead stack slots, torn reads)
_LOWEST, _HIGHEST = 4096, 1 << 56
_MAP = -1  # the type slot of a map's key: maps are keyed by header address alone


@dataclass(frozen=True)
class Root:
    """Where the walk starts: a value of type ``die`` at ``addr`` named ``label``
    (``main.srv``, ``goroutine 7 main.worker m``); with ``header``, ``addr`` is a map's
    header itself (a map variable Delve found in a register)."""

    label: str
    addr: int
    die: int
    header: bool = False


@dataclass(frozen=True)
class Child:
    """What a map's contents lead to: a value of type ``die`` at ``addr``, ``label`` after
    the map's path (``["abc"]``)."""

    addr: int
    die: int
    label: str
    steps: int = 1
    header: bool = False  # addr is a map header (a map value held in the map's slot)


@dataclass(frozen=True)
class Found:
    """A map met by the walk, under its shortest path."""

    addr: int
    die: int
    path: str
    steps: int
    beyond_len: bool  # the path goes through a slice element past its len (kept by cap)


@dataclass
class Stats:
    objects: int = 0  # objects read (a slice's backing array counts once)
    bytes_read: int = 0
    unreadable: int = 0  # pointers to memory that could not be read
    unknown_types: int = 0  # interface values whose dynamic type has no DWARF entry
    roots: int = 0
    rounds: int = 0
    not_followed: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Held:
    """Interface words of a batch of rows: type (or itab) words, data words, and whose."""

    types: NDArray[np.uint64]
    data: NDArray[np.uint64]
    owner: NDArray[np.int64]
    index: NDArray[np.int64] | None
    row_size: int  # the size of the rows' type (where each row is: _row_addr)


# a row of a read batch: whose object (owner[i]), its element index (index[i], or None for
# single objects), and i
_Row = tuple[NDArray[np.int64], NDArray[np.int64] | None, int]

# expand([(header, map type), ...]) -> for each map, what its live keys and values lead to
# (the maps' decoding is the caller's business: the walk only needs the children); all the
# maps met at one distance are asked for at once, so that they can be read in bulk
Expand = Callable[[list[tuple[int, int]]], list[list[Child]]]


def read_rows(
    mem: MemoryReader, addrs: NDArray[np.uint64], size: int
) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """``size`` bytes at each address (a row each) in one bulk read, and which could be
    read (when one cannot, each is read on its own to find which)."""
    n = len(addrs)
    ok = np.ones(n, np.bool_)
    try:
        raw = mem.read_each(addrs, size)
    except MemoryReadError:
        raw = bytearray(n * size)
        for i, a in enumerate(addrs.tolist()):
            try:
                raw[i * size : (i + 1) * size] = mem.read(int(a), size)
            except MemoryReadError:
                ok[i] = False
    return np.frombuffer(raw, np.uint8).reshape(n, size), ok


class Walk:
    def __init__(
        self,
        mem: MemoryReader,
        plans: Plans,
        type_at: Callable[[int], int | None],
        expand: Expand,
        *,
        little_endian: bool = True,
    ) -> None:
        self.mem = mem
        self.plans = plans
        self.type_at = type_at  # a runtime type's address -> its DWARF type (None: unknown)
        self.expand = expand
        self.ptr = plans.ptr_size
        self.word = np.dtype(("<" if little_endian else ">") + ("u8" if self.ptr == 8 else "u4"))
        self.stats = Stats()
        # the nodes: parallel lists, one entry per object or map found
        self._addr: list[int] = []
        self._die: list[int] = []
        self._count: list[int] = []
        # -1: one object (found by a pointer); else an array object whose elements are
        # walked as [i]: a slice's backing array (its len: the rest is kept by its cap) or
        # an inline array (its count)
        self._length: list[int] = []
        self._parent: list[int] = []
        self._label: list[str] = []
        self._dist: list[int] = []
        self._beyond: list[bool] = []
        self._done: list[bool] = []
        self._ids: dict[tuple[int, int, int], int] = {}
        # nodes waiting, by distance (distances are small integers: a bucket queue)
        self._queue: dict[int, list[int]] = {}
        self._itab_type: dict[int, int] = {}
        self.found: list[Found] = []

    # -- nodes ------------------------------------------------------------------------

    def _offer(
        self,
        addr: int,
        die: int,
        count: int,
        *,
        parent: int,
        label: str,
        dist: int,
        length: int = -1,
        beyond: bool = False,
    ) -> None:
        """``count`` objects of type ``die`` at ``addr``, ``dist`` steps away by ``parent``."""
        if not _LOWEST <= addr < _HIGHEST:
            self.stats.unreadable += 1
            return
        self._place((addr, die, count), die, parent, label, dist, length=length, beyond=beyond)

    def _offer_map(
        self, header: int, die: int, *, parent: int, label: str, dist: int, beyond: bool = False
    ) -> None:
        """The map at ``header`` (keyed by its header alone: listed once however reached)."""
        if not _LOWEST <= header < _HIGHEST:
            self.stats.unreadable += 1
            return
        beyond = beyond or (parent >= 0 and self._beyond[parent])
        self._place((header, _MAP, 0), die, parent, label, dist, length=-1, beyond=beyond)

    def _place(
        self,
        key: tuple[int, int, int],
        die: int,
        parent: int,
        label: str,
        dist: int,
        *,
        length: int,
        beyond: bool,
    ) -> None:
        """A node, new or found again by a shorter path (else nothing), queued at ``dist``."""
        n = self._ids.get(key)
        if n is not None:
            if self._done[n] or self._dist[n] <= dist:
                return
            self._dist[n], self._parent[n], self._label[n] = dist, parent, label
            self._die[n], self._beyond[n] = die, beyond
        else:
            n = len(self._addr)
            self._ids[key] = n
            self._addr.append(key[0])
            self._die.append(die)
            self._count.append(key[2])
            self._length.append(length)
            self._parent.append(parent)
            self._label.append(label)
            self._dist.append(dist)
            self._beyond.append(beyond)
            self._done.append(False)
        self._queue.setdefault(dist, []).append(n)

    def path(self, n: int) -> str:
        parts: list[str] = []
        while n >= 0:
            parts.append(self._label[n])
            n = self._parent[n]
        return "".join(reversed(parts))

    # -- the walk ---------------------------------------------------------------------

    def run(self, roots: Iterable[Root]) -> list[Found]:
        for r in roots:
            self.stats.roots += 1
            if r.header:
                self._offer_map(r.addr, r.die, parent=-1, label=r.label, dist=0)
            elif self.plans.plan(r.die) is not None:
                self._offer(r.addr, r.die, 1, parent=-1, label=r.label, dist=0)
        while self._queue:
            dist = min(self._queue)
            batch: list[int] = []
            for n in self._queue.pop(dist):  # in the order they were found
                if not self._done[n] and self._dist[n] == dist:
                    self._done[n] = True
                    batch.append(n)
            self.stats.rounds += 1
            self._round(batch)
        return self.found

    def _round(self, batch: list[int]) -> None:
        groups: dict[int, list[int]] = {}
        maps = [n for n in batch if self._count[n] == 0]
        if maps:
            self._maps(maps)
        for n in batch:
            if self._count[n] != 0:
                groups.setdefault(self._die[n], []).append(n)
        for die, nodes in groups.items():
            plan = self.plans.plan(die)
            if plan is not None and plan.size > 0:
                self._objects(plan, nodes)

    def _maps(self, nodes: list[int]) -> None:
        for n in nodes:
            addr, die = self._addr[n], self._die[n]
            self.found.append(Found(addr, die, self.path(n), self._dist[n], self._beyond[n]))
        children = self.expand([(self._addr[n], self._die[n]) for n in nodes])
        for n, kids in zip(nodes, children, strict=True):
            self._map_children(n, kids)

    def _map_children(self, n: int, children: Iterable[Child]) -> None:
        for c in children:
            dist = self._dist[n] + c.steps
            if c.header:
                self._offer_map(c.addr, c.die, parent=n, label=c.label, dist=dist)
            elif self.plans.plan(c.die) is not None:
                self._offer(
                    c.addr, c.die, 1, parent=n, label=c.label, dist=dist, beyond=self._beyond[n]
                )

    def _objects(self, plan: Plan, nodes: list[int]) -> None:
        """Read every object of one type found at this distance, and follow its edges."""
        size = plan.size
        # a slice's backing array or an inline array is walked element by element (its
        # elements named [i]) even with one element; an object found by a pointer is one
        single = [n for n in nodes if self._length[n] < 0]
        many = [n for n in nodes if self._length[n] >= 0 and self._count[n] * size <= MAX_OBJECT]
        if single:
            rows, ok = self._read_each(np.array([self._addr[n] for n in single], np.uint64), size)
            owner = np.array(single, np.int64)[ok]
            self._follow(plan, rows[ok], owner, None)
        for n in many:  # a backing array or a large inline array: one read each
            count = self._count[n]
            try:
                raw = self.mem.read(self._addr[n], count * size)
            except MemoryReadError:
                self.stats.unreadable += 1
                continue
            self.stats.objects += 1
            self.stats.bytes_read += len(raw)
            rows = np.frombuffer(raw, np.uint8).reshape(count, size)
            self._follow(plan, rows, np.full(count, n, np.int64), np.arange(count))

    def _read_each(
        self, addrs: NDArray[np.uint64], size: int
    ) -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
        """``read_rows``, counted in the walk's figures."""
        rows, ok = read_rows(self.mem, addrs, size)
        n = int(ok.sum())
        self.stats.unreadable += len(addrs) - n
        self.stats.objects += n
        self.stats.bytes_read += n * size
        return rows, ok

    def _words(self, rows: NDArray[np.uint8], off: int) -> NDArray[np.uint64]:
        return (
            np.ascontiguousarray(rows[:, off : off + self.ptr])
            .view(self.word)
            .ravel()
            .astype(np.uint64)
        )

    def _follow(
        self,
        plan: Plan,
        rows: NDArray[np.uint8],
        owner: NDArray[np.int64],
        index: NDArray[np.int64] | None,
    ) -> None:
        """Follow each edge of ``plan`` in every row (an object, or an element of an
        array object: ``index`` is then its position)."""
        if len(rows) == 0:
            return
        for e in plan.edges:
            words = self._words(rows, e.off)
            live = np.arange(len(rows)) if e.kind == Edge.ARRAY else np.flatnonzero(words)
            if len(live) == 0:
                continue
            if e.kind == Edge.NOTE:
                self.stats.not_followed[e.label] = self.stats.not_followed.get(e.label, 0) + len(
                    live
                )
            elif e.kind in (Edge.EFACE, Edge.IFACE):
                data = self._words(rows, e.off + self.ptr)
                held = _Held(words, data, owner, index, plan.size)
                self._interfaces(e, held, live[data[live] != 0])
            elif e.kind in (Edge.SLICE, Edge.ARRAY):
                self._runs(e, plan, rows, live, row=(owner, index, 0), words=words)
            elif index is None:  # pointers and maps of single objects: the common case
                self._singles(e, words, owner, live)
            else:
                for i in live.tolist():
                    self._edge(e, int(words[i]), 1, row=(owner, index, i))

    def _runs(
        self,
        e: PlanEdge,
        plan: Plan,
        rows: NDArray[np.uint8],
        live: NDArray[np.int64],
        *,
        row: _Row,
        words: NDArray[np.uint64],
    ) -> None:
        """Slices (their backing arrays, up to cap) and large inline arrays: objects of
        many elements (``words``: the edge's first word of each row, a slice's array)."""
        owner, index, _ = row
        if e.kind == Edge.ARRAY:
            for i in live.tolist():
                at = self._row_addr(int(owner[i]), index, i, plan.size) + e.off
                self._edge(e, at, e.count, row=(owner, index, i), length=e.count)
            return
        lens = self._words(rows, e.off + self.ptr)
        caps = self._words(rows, e.off + 2 * self.ptr)
        for i in live.tolist():
            cap, length = int(caps[i]), int(lens[i])
            if cap > 0 and length <= cap:
                self._edge(e, int(words[i]), cap, row=(owner, index, i), length=length)

    def _singles(
        self,
        e: PlanEdge,
        words: NDArray[np.uint64],
        owner: NDArray[np.int64],
        live: NDArray[np.int64],
    ) -> None:
        """``_edge`` for the rows of single objects (no element index), in one loop."""
        dists, beyonds = self._dist, self._beyond
        targets, owners = words[live].tolist(), owner[live].tolist()
        if e.kind == Edge.MAP:
            for addr, n in zip(targets, owners, strict=True):
                self._offer_map(
                    addr, e.target, parent=n, label=e.label, dist=dists[n] + e.steps,
                    beyond=beyonds[n],
                )  # fmt: skip
            return
        offer = self._offer
        for addr, n in zip(targets, owners, strict=True):
            offer(
                addr, e.target, 1, parent=n, label=e.label, dist=dists[n] + e.steps,
                beyond=beyonds[n],
            )  # fmt: skip

    def _edge(self, e: PlanEdge, addr: int, count: int, *, row: _Row, length: int = -1) -> None:
        """What a row's edge ``e`` leads to: ``count`` objects at ``addr``, or a map."""
        owner, index, i = row
        n = int(owner[i])
        at, beyond = self._where(n, index, i)
        dist = self._dist[n] + e.steps + (1 if index is not None else 0)
        if e.kind == Edge.MAP:
            self._offer_map(addr, e.target, parent=n, label=at + e.label, dist=dist, beyond=beyond)
        else:
            self._offer(
                addr,
                e.target,
                count,
                parent=n,
                label=at + e.label,
                dist=dist,
                length=length,
                beyond=beyond,
            )

    def _row_addr(self, n: int, index: NDArray[np.int64] | None, i: int, size: int) -> int:
        return self._addr[n] + (0 if index is None else int(index[i]) * size)

    def _where(self, n: int, index: NDArray[np.int64] | None, i: int) -> tuple[str, bool]:
        """The element's part of the path (``[3]``) and whether it is past the slice's len."""
        beyond = self._beyond[n]
        if index is None:
            return "", beyond
        k = int(index[i])
        length = self._length[n]
        return f"[{k}]", beyond or (0 <= length <= k)

    def _interfaces(self, e: PlanEdge, held: _Held, live: NDArray[np.int64]) -> None:
        """Interface values: the dynamic type from the type word (or the itab's), then the
        value, in the data word itself (pointer-shaped types) or behind it."""
        if len(live) == 0:
            return
        types = held.types[live]
        if e.kind == Edge.IFACE:
            types = self._itab_types(types)
        for j, i in enumerate(live.tolist()):
            t = int(types[j])
            die = self.type_at(t) if t else None
            if die is None:
                self.stats.unknown_types += 1
                continue
            if not self.plans.reaches(die):
                continue
            n = int(held.owner[i])
            at, beyond = self._where(n, held.index, i)
            label = f"{at}{e.label}.({self.plans.name(die)})"
            dist = self._dist[n] + e.steps + 1 + (1 if held.index is not None else 0)
            value = int(held.data[i])
            shape, _ = self.plans.shape(die)
            if not self.plans.direct(die):
                self._offer(value, die, 1, parent=n, label=label, dist=dist, beyond=beyond)
            elif shape == Shape.MAP:
                self._offer_map(value, die, parent=n, label=label, dist=dist, beyond=beyond)
            elif shape == Shape.POINTER and self.plans.size(target := self.plans.elem(die)) > 0:
                self._offer(value, target, 1, parent=n, label=label, dist=dist, beyond=beyond)
            elif shape != Shape.POINTER:  # a struct or array of one pointer-shaped word: it
                # is in the data word itself, so it is read there
                word = self._row_addr(n, held.index, i, held.row_size) + e.off + self.ptr
                self._offer(word, die, 1, parent=n, label=label, dist=dist, beyond=beyond)

    def _itab_types(self, itabs: NDArray[np.uint64]) -> NDArray[np.uint64]:
        """The dynamic types of itabs (abi.ITab.Type: the word after Inter), read once each."""
        out = np.zeros(len(itabs), np.uint64)
        want = sorted({int(a) for a in itabs.tolist()} - self._itab_type.keys())
        if want:
            rows, ok = self._read_each(np.array(want, np.uint64) + np.uint64(self.ptr), self.ptr)
            got = self._words(rows, 0)
            for a, t, good in zip(want, got.tolist(), ok.tolist(), strict=True):
                self._itab_type[a] = int(t) if good else 0
        for j, a in enumerate(itabs.tolist()):
            out[j] = self._itab_type.get(int(a), 0)
        return out
