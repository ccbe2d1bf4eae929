"""Decoders: layout + MemoryReader + address -> model objects. They never see JSON-RPC."""

from __future__ import annotations

from dlvsnap.decode.classic import ClassicDecoder
from dlvsnap.decode.swiss import SwissDecoder
from dlvsnap.decode.types import decode_map_type
from dlvsnap.layouts import Layout
from dlvsnap.memory import MemoryReader
from dlvsnap.model import MapType

Decoder = SwissDecoder | ClassicDecoder

__all__ = ["ClassicDecoder", "Decoder", "SwissDecoder", "decode_map_type", "make_decoder"]


def make_decoder(layout: Layout, mem: MemoryReader, map_type: MapType) -> Decoder:
    if layout.family == "classic":
        return ClassicDecoder(layout, mem, map_type)
    return SwissDecoder(layout, mem, map_type)
