"""The maps the census meets: each decoded with the layouts ``snap`` uses (the same figures:
live entries, slots, tombstones, bytes held the allocator's way), and what its live keys
and values lead to, for the walk to go on. Pure: a MemoryReader, a layout and the
binary's types; speaks no Delve."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dlvsnap.advice import MapFacts
from dlvsnap.census.plan import Plans, Shape
from dlvsnap.census.result import ADVICE_MIN_WASTE
from dlvsnap.census.walk import Child, read_rows
from dlvsnap.decode import (
    ClassicDecoder,
    Decoder,
    SwissDecoder,
    decode_map_type,
    make_decoder,
)
from dlvsnap.errors import DlvsnapError
from dlvsnap.goversion import Release
from dlvsnap.layouts import Layout
from dlvsnap.memory import MemoryReader
from dlvsnap.model import MapSnapshot, TypeCatalog, gosyntax
from dlvsnap.phases import Figures

KEY_TEXT = 48  # a key in a path is cut to this many characters
BATCH_MIN = 8  # maps of one type met together are read in bulk from this many on


@dataclass(frozen=True)
class Occupancy:
    """One map, decoded."""

    addr: int
    type_name: str
    impl: str
    figures: Figures
    facts: MapFacts | None  # for the advice: only of maps that waste enough to get it
    warnings: tuple[str, ...] = ()


class MapReader:
    """Decodes the maps the walk meets (``read``) and keeps what they hold (``seen``)."""

    def __init__(
        self,
        mem: MemoryReader,
        layout: Layout,
        plans: Plans,
        *,
        types_base: int,
        catalog: TypeCatalog,
        release: Release,
    ) -> None:
        self.mem = mem
        self.layout = layout
        self.plans = plans
        self.types_base = types_base
        self.catalog = catalog
        self.release = release
        self._decoders: dict[tuple[int, bool], Decoder | None] = {}
        self.seen: dict[int, Occupancy] = {}
        self.failed: dict[int, str] = {}  # header -> why it could not be decoded

    def _decoder(self, die: int, keys: bool) -> Decoder | None:
        """The decoder of maps of type ``die``; ``keys``: one that decodes every key (the
        census names a map's keys only in the paths of the maps its contents lead to)."""
        if (die, keys) not in self._decoders:
            rt = self.plans.runtime_type(die)
            dec: Decoder | None = None
            if rt is not None:
                try:
                    mt = decode_map_type(self.layout, self.mem, self.types_base + rt, self.catalog)
                    dec = make_decoder(self.layout, self.mem, mt, self.catalog)
                    dec.keys.decode = keys
                except DlvsnapError:
                    dec = None
            self._decoders[die, keys] = dec
        return self._decoders[die, keys]

    def _leads_on(self, die: int) -> bool:
        """Whether a map of this type can lead to more maps (through its keys or values)."""
        return any(t >= 0 and self.plans.reaches(t) for t in self.plans.key_elem(die))

    def read_all(self, maps: list[tuple[int, int]]) -> list[list[Child]]:
        """``read`` of each (header, type) of ``maps``; the small maps of a type whose keys
        and values lead nowhere read together (the decoders' ``small_maps``: a few bulk
        reads for thousands of maps), the rest one by one."""
        out: list[list[Child]] = [[] for _ in maps]
        by_type: dict[int, list[int]] = {}
        for i, (_, die) in enumerate(maps):
            by_type.setdefault(die, []).append(i)
        for die, idxs in by_type.items():
            rest = idxs
            if len(idxs) >= BATCH_MIN and not self._leads_on(die):
                dec = self._decoder(die, False)
                if isinstance(dec, (SwissDecoder, ClassicDecoder)):
                    rest = self._small(dec, die, [maps[i][0] for i in idxs], idxs)
            for i in rest:
                out[i] = self.read(*maps[i])
        return out

    def _small(
        self, dec: SwissDecoder | ClassicDecoder, die: int, addrs: list[int], idxs: list[int]
    ) -> list[int]:
        """The small maps among ``addrs`` read in bulk; the positions left to ``read``."""
        try:
            got = dec.small_maps(np.array(addrs, dtype=np.uint64))
        except DlvsnapError:
            return idxs  # one of them is unreadable: each on its own says which
        name, rest = self.plans.name(die), []
        sums: dict[int, tuple[int, int]] = {}  # the maps share a few Memory objects
        used, slots, tombs = got.used.tolist(), got.slots.tolist(), got.tombstones.tolist()
        for j, (addr, i) in enumerate(zip(addrs, idxs, strict=True)):
            m = got.memory[j]
            if m is None:
                rest.append(i)
                continue
            if id(m) not in sums:
                sums[id(m)] = (m.held, m.needed)
            held, needed = sums[id(m)]
            fig = Figures(used[j], slots[j], tombs[j], held, needed, addr)
            if fig.waste >= ADVICE_MIN_WASTE:  # never for a small map, but the advice needs facts
                rest.append(i)
                continue
            self.seen[addr] = Occupancy(addr, name, dec.family, fig, None)
        return rest

    def read(self, addr: int, die: int) -> list[Child]:
        """Decode the map at ``addr`` (type ``die``); what its live keys and values lead to."""
        leads = self._leads_on(die)
        dec = self._decoder(die, leads)
        if dec is None:
            self.failed[addr] = f"no runtime type for {self.plans.name(die)}"
            return []
        try:
            snap = dec.snapshot(addr)
        except DlvsnapError as e:
            self.failed[addr] = str(e)
            return []
        fig = Figures.of(snap)
        facts = (
            MapFacts.of(snap, self.layout, self.release) if fig.waste >= ADVICE_MIN_WASTE else None
        )
        self.seen[addr] = Occupancy(
            addr, self.plans.name(die), snap.impl, fig, facts, snap.warnings
        )
        return self._children(snap, dec, die) if leads else []

    def _children(self, snap: MapSnapshot, dec: Decoder, die: int) -> list[Child]:
        """What the live slots' values (and keys) lead to, named by their keys; the words
        behind them (indirect values, map headers) read in bulk. A slot whose words cannot
        be read leads nowhere."""
        key_die, elem_die = self.plans.key_elem(die)
        walk_key = key_die >= 0 and self.plans.reaches(key_die)
        walk_elem = elem_die >= 0 and self.plans.reaches(elem_die)
        if not (walk_key or walk_elem) or snap.count == 0:
            return []
        mt = dec.mt
        full = np.flatnonzero(snap.full_mask)
        row, slot = np.divmod(full, snap.rows.slots_per_row)
        group = snap.rows.addr[row].astype(np.uint64)
        slot = slot.astype(np.uint64)
        ok = np.ones(len(full), np.bool_)
        header = walk_elem and self.plans.shape(elem_die)[0] == Shape.MAP
        elem = key = np.zeros(len(full), np.uint64)
        if walk_elem:
            elem = (group + slot * np.uint64(mt.elem_stride) + np.uint64(mt.elems_off)).astype(
                np.uint64
            )
            if mt.elem.indirect:
                elem = self._words(elem, ok)
            if header:
                elem = self._words(elem, ok)  # the maps held in the slots: their headers
        if walk_key:
            key = (group + slot * np.uint64(mt.key_stride) + np.uint64(mt.keys_off)).astype(
                np.uint64
            )
            if mt.key.indirect:
                key = self._words(key, ok)
        out: list[Child] = []
        for i, pos in enumerate(full.tolist()):
            if not ok[i]:
                continue
            text = gosyntax(snap.rows.key(pos), KEY_TEXT)
            if walk_elem and elem[i]:
                out.append(Child(int(elem[i]), elem_die, f"[{text}]", header=header))
            if walk_key and key[i]:
                out.append(Child(int(key[i]), key_die, f".key({text})"))
        return out

    def _words(self, addrs: NDArray[np.uint64], ok: NDArray[np.bool_]) -> NDArray[np.uint64]:
        """The pointer-sized word at each address; ``ok`` cleared where it cannot be read."""
        rows, read = read_rows(self.mem, addrs, self.layout.ptr_size)
        ok &= read
        return np.ascontiguousarray(rows).view(self.layout.ptr_dtype).reshape(-1).astype(np.uint64)
