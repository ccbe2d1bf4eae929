"""What the classic and swiss decoders share: the layout, the reader, the map type, keys,
and the allocator of the target's Go release (memory accounting)."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Self

import numpy as np
from numpy.typing import NDArray

from dlvsnap.alloc import Allocator, allocator_for
from dlvsnap.decode.keys import KeyDecoder
from dlvsnap.errors import LayoutError
from dlvsnap.layouts import Layout
from dlvsnap.memory import MemoryReader
from dlvsnap.model import KeyType, MapType, Memory, TypeCatalog


@dataclass(frozen=True)
class EntryCost:
    """What one live entry allocates on its own: a key or elem over 128 bytes is stored by
    pointer, each in its own ``newobject`` (classic mapassign, swiss putSlot)."""

    held: int = 0  # as the allocator reserves it
    structural: int = 0  # by the types' sizes
    allocations: int = 0

    @staticmethod
    def of(mt: MapType, alloc: Allocator) -> EntryCost:
        parts: list[KeyType] = [t for t in (mt.key, mt.elem) if t.indirect]
        return EntryCost(
            sum(alloc.reserved(t.size, pointers=t.pointers) for t in parts),
            sum(t.size for t in parts),
            len(parts),
        )


class BaseDecoder:
    family = ""

    def __init__(
        self,
        layout: Layout,
        mem: MemoryReader,
        map_type: MapType,
        types: TypeCatalog | None = None,
    ) -> None:
        if layout.family != self.family:
            raise LayoutError(f"layout {layout.name} is not a {self.family}-map layout")
        self.layout = layout
        self.mem = mem
        self.mt = map_type
        self.keys = KeyDecoder(map_type.key, layout.ptr_size, layout.little_endian, mem, types)
        self.alloc = allocator_for(layout.release, layout.ptr_size)
        self.entry = EntryCost.of(map_type, self.alloc)
        # the state of every possible control byte, computed once per decoder
        self.states = tuple(self.byte_state(b) for b in range(256))

    def byte_state(self, b: int) -> str:
        raise NotImplementedError

    def live(self, m: Memory, count: int) -> Memory:
        """``m`` (computed for ``m.live_entries`` entries) for ``count`` live entries: only
        the separately allocated keys/elems follow the count."""
        e = self.entry
        s = m.structural
        return dataclasses.replace(
            m,
            indirect=count * e.held,
            live_entries=count,
            allocations=m.allocations + (count - m.live_entries) * e.allocations,
            structural=None if s is None else dataclasses.replace(s, indirect=count * e.structural),
        )

    def over(self, mem: MemoryReader) -> Self:
        """The same decoder reading ``mem`` (for example bytes captured earlier)."""
        other = copy.copy(self)
        other.mem = mem
        other.keys = copy.copy(self.keys)
        other.keys.mem = mem
        return other


@dataclass(frozen=True)
class SmallMaps:
    """A decoder's ``small_maps`` (a census reads many small maps in bulk): per map asked
    for, whether it was read (``ok``), and then its live entries, slots, tombstones (swiss:
    deleted slots; classic: emptyOne slots, as phases.Figures counts them) and Memory."""

    ok: NDArray[np.bool_]
    used: NDArray[np.int64]
    slots: NDArray[np.int64]
    tombstones: NDArray[np.int64]
    memory: list[Memory | None]
