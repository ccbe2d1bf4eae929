"""Whether dlvsnap may hash a map's keys itself, per map type, as an explicit state.

dlvsnap reads only what a delete can touch when it can tell where the key is: it hashes the
key as the runtime does (dlvsnap.hashing) with the map's seed. A hasher is found from the
map type's hash function and the binary's AES key schedule (``Pending``), trusted once it
has placed at least 8 (up to 64) live keys of a whole snapshot where the runtime put them
(``Trusted``), and given up for good (``Refused``, with the reason) when it places one
wrongly, when a delete's count disagrees with the probe, or when it cannot be used at all
(another architecture, keys the runtime hashes otherwise, ``--full``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from dlvsnap.decode import Decoder
from dlvsnap.errors import MemoryReadError
from dlvsnap.hashing import AESKEYSCHED, HASHERS, USE_AESHASH, KeyHasher
from dlvsnap.memory import MemoryReader
from dlvsnap.model import MapSnapshot
from dlvsnap.target import TargetInfo, elf_symbols
from dlvsnap.watch.options import Note

MIN_PLACED, MAX_PLACED = 8, 64


class Hasher(Protocol):
    """A map type's hash function: ``hasher(key bytes, seed) -> hash`` (hashing.KeyHasher)."""

    name: str

    def __call__(self, data: bytes, seed: int) -> int: ...


@dataclass(frozen=True)
class Pending:
    """A hasher found, not yet checked against the map."""

    hasher: Hasher


@dataclass(frozen=True)
class Trusted:
    hasher: Hasher


@dataclass(frozen=True)
class Refused:
    reason: str


Trust = Pending | Trusted | Refused
# How a map type's hasher is found: from its decoder and the process's memory.
Finder = Callable[[Decoder, MemoryReader], Pending | Refused]


class HashTrust:
    def __init__(
        self, find: Finder, on_note: Callable[[Note], None], *, full: bool = False
    ) -> None:
        self.find = find
        self.on_note = on_note
        self.full = full
        self._by_type: dict[int, Trust] = {}

    def state(self, map_type: int, dec: Decoder, mem: MemoryReader) -> Trust:
        """The map type's state, found on first use (a note says when it is refused)."""
        if self.full:
            return Refused("--full")
        got = self._by_type.get(map_type)
        if got is None:
            got = self._by_type[map_type] = self.find(dec, mem)
            if isinstance(got, Refused):
                self.on_note(
                    Note(
                        "snapshots",
                        f"whole-map snapshots at every delete: {got.reason}",
                        {"reason": got.reason},
                    )
                )
        return got

    def refuse(self, map_type: int, reason: str) -> None:
        self._by_type[map_type] = Refused(reason)

    def check(self, map_type: int, dec: Decoder, pending: Pending, snap: MapSnapshot) -> None:
        """Trust the hasher once it places at least MIN_PLACED (up to MAX_PLACED) live keys of
        a whole snapshot where the runtime put them (h2/tophash: 7-8 bits each, and table
        or bucket). Until a snapshot has enough keys it can hash, it stays pending."""
        h = pending.hasher
        full = np.flatnonzero(snap.full_mask)
        seed = snap.seed
        checked = 0
        for pos in full[:: max(1, len(full) // MAX_PLACED)][:MAX_PLACED].tolist():
            data = dec.keys.hash_input(snap.rows.key(pos))
            if data is None:
                continue  # a key dlvsnap cannot hash (a NaN, a cut string): no evidence
            if not dec.placed(snap, pos, h(data, seed)):
                reason = f"dlvsnap's {h.name} does not place this map's keys"
                self._by_type[map_type] = Refused(reason)
                self.on_note(Note("snapshots", f"whole-map snapshots: {reason}"))
                return
            checked += 1
        if checked >= MIN_PLACED:
            self._by_type[map_type] = Trusted(h)


def aes_hasher(target: TargetInfo, load_bias: Callable[[], int]) -> Finder:
    """The runtime's own hashing (dlvsnap.hashing): the map type's hash function found by
    address among the binary's symbols, with the process's AES key schedule. ``load_bias``:
    where the binary is loaded minus where its symbols say (a position-independent
    executable)."""

    def find(dec: Decoder, mem: MemoryReader) -> Pending | Refused:
        if target.goarch != "amd64":
            return Refused(f"dlvsnap hashes keys on amd64 only, not {target.goarch}")
        bias = load_bias()
        names = [*HASHERS, *AESKEYSCHED, *USE_AESHASH]
        syms = {n: a + bias for n, a in elf_symbols(target.path, names).items()}
        ks = next((syms[n] for n in AESKEYSCHED if n in syms), None)
        use = next((syms[n] for n in USE_AESHASH if n in syms), None)
        if ks is None or use is None:
            return Refused("the binary has no aeskeysched symbol")
        try:
            if mem.read(use, 1) == b"\x00":
                return Refused("the target runs without AES hashing (runtime.useAeshash is false)")
            pc = int.from_bytes(mem.read(dec.mt.hasher, target.ptr_size), dec.layout.order)
            name = next((n for n, a in syms.items() if a == pc and n in HASHERS), None)
            if name is None:
                kind = dec.mt.key.kind_name
                return Refused(f"dlvsnap does not hash {kind} keys this way (hasher at {pc:#x})")
            return Pending(KeyHasher(name, mem.read(ks, 128)))
        except MemoryReadError as e:
            return Refused(f"cannot read the hash function's state: {e}")

    return find
