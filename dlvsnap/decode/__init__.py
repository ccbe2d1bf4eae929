"""Decoders: layout + MemoryReader + address -> model objects. They never see JSON-RPC.

Both implementations (classic buckets, swiss tables) serve one protocol, ``Decoder``, with
the same signatures; a decoder holds only what its constructor was given (the layout, the
reader, the map type) and keeps no state from one call to the next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, Self

from dlvsnap.decode.classic import ClassicDecoder
from dlvsnap.decode.keys import KeyDecoder
from dlvsnap.decode.swiss import SwissDecoder
from dlvsnap.decode.types import decode_map_type
from dlvsnap.layouts import Layout
from dlvsnap.memory import MemoryReader, SparseMem
from dlvsnap.model import KeyValue, MapSnapshot, MapType, TypeCatalog

__all__ = ["ClassicDecoder", "Decoder", "SwissDecoder", "decode_map_type", "make_decoder"]


class Decoder(Protocol):
    """What the watch engine, ``snap`` and snapshot files ask of a map decoder.

    ``hash_of(seed)`` is the hash of the key in question under the map's seed (the caller
    hashes; the decoder reads the seed). ``known`` is the last snapshot of the same map
    the caller holds: a decoder that relies on the map's structure staying as it was
    (classic: its bucket arrays) checks it there and answers None (read the whole map)
    when it changed; one that reads the structure each time (swiss) needs nothing of it.
    """

    layout: Layout
    mt: MapType
    keys: KeyDecoder

    def header(self, addr: int) -> dict[str, Any]:
        """The map's header (hmap / maps.Map), parsed."""
        ...

    def snapshot(self, addr: int, *, max_slots: int | None = None) -> MapSnapshot:
        """Every group/bucket of the map (refused past ``max_slots`` slots, before reading)."""
        ...

    def probe(
        self,
        addr: int,
        key: KeyValue,
        hash_of: Callable[[int], int],
        known: MapSnapshot,
        *,
        insert: bool = False,
    ) -> tuple[MapSnapshot, bool] | None:
        """What deleting (``insert``: inserting) ``key`` can touch, as a partial snapshot, and
        whether the key is there; None when only the whole map will do."""
        ...

    def reread(self, addr: int, prior: MapSnapshot, *, structural: bool = False) -> MapSnapshot:
        """What ``prior`` read, read again after the call (the whole map if that no longer
        fits); ``structural`` after an insert, which may change more than a delete."""
        ...

    def capture(
        self, addr: int, hash_of: Callable[[int], int], known: MapSnapshot
    ) -> SparseMem | None:
        """The raw bytes ``probe`` would read for a delete, so that it can run on them later
        (``over``) while the program runs; None when it cannot say in advance."""
        ...

    def recapture(self, addr: int, prior: MapSnapshot) -> SparseMem | None:
        """The raw bytes ``reread`` would read after a delete; None when it cannot."""
        ...

    def placed(self, snap: MapSnapshot, pos: int, hash_: int) -> bool:
        """Whether ``hash_`` can be the hash of the key in slot ``pos`` of a whole snapshot,
        as far as the slot's place and control byte tell."""
        ...

    def over(self, mem: MemoryReader) -> Self:
        """The same decoder reading ``mem`` (bytes captured earlier)."""
        ...


def make_decoder(
    layout: Layout, mem: MemoryReader, map_type: MapType, types: TypeCatalog | None = None
) -> Decoder:
    """The decoder of the layout's family; ``types`` gives interface keys' dynamic types."""
    if layout.family == "classic":
        return ClassicDecoder(layout, mem, map_type, types)
    return SwissDecoder(layout, mem, map_type, types)
