"""What the classic and swiss decoders share: the layout, the reader, the map type, keys."""

from __future__ import annotations

import copy
from typing import Self

from dlvsnap.decode.keys import KeyDecoder
from dlvsnap.errors import LayoutError
from dlvsnap.layouts import Layout
from dlvsnap.memory import MemoryReader
from dlvsnap.model import MapType, TypeCatalog


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
        # the state of every possible control byte, computed once per decoder
        self.states = tuple(self.byte_state(b) for b in range(256))

    def byte_state(self, b: int) -> str:
        raise NotImplementedError

    def over(self, mem: MemoryReader) -> Self:
        """The same decoder reading ``mem`` (for example bytes captured earlier)."""
        other = copy.copy(self)
        other.mem = mem
        other.keys = copy.copy(self.keys)
        other.keys.mem = mem
        return other
