"""What a census found: its maps, most wasteful first, and what the walk did. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field

from dlvsnap.advice import MapFacts
from dlvsnap.census.walk import Stats
from dlvsnap.phases import Figures


@dataclass
class RootStats:
    """Where the census started: package variables and goroutines looked at, frames and
    locals that became roots, and the variables left out, by why."""

    globals: int = 0
    goroutines: int = 0
    frames: int = 0
    locals: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


# The advice of ``snap`` is given for at most this many maps, each wasting at least this.
ADVICE_MAPS = 3
ADVICE_MIN_WASTE = 16 << 10


@dataclass(frozen=True)
class MapEntry:
    """One map of the census."""

    path: str  # the shortest path from a root: main.srv.sessions["abc"].cache
    steps: int
    addr: int  # its header
    type_name: str
    impl: str
    figures: Figures
    facts: MapFacts | None  # for the advice: only of maps wasting ADVICE_MIN_WASTE or more
    beyond_len: bool = False  # the path goes through a slice element past its len
    warnings: tuple[str, ...] = ()

    @property
    def waste(self) -> int:
        return self.figures.waste


@dataclass
class Census:
    maps: list[MapEntry]  # by waste, largest first
    stats: Stats
    roots: RootStats
    undecoded: dict[str, str] = field(default_factory=dict)  # header (hex) -> why
    seconds: dict[str, float] = field(default_factory=dict)  # roots, walk

    @property
    def held(self) -> int:
        return sum(m.figures.held for m in self.maps)

    @property
    def needed(self) -> int:
        return sum(m.figures.needed for m in self.maps)

    @property
    def waste(self) -> int:
        return sum(m.waste for m in self.maps)

    def shown(self, top: int, min_bytes: int) -> list[MapEntry]:
        """The maps holding at least ``min_bytes``, the first ``top`` of them (0: all)."""
        kept = [m for m in self.maps if m.figures.held >= min_bytes]
        return kept[:top] if top else kept

    def worst(self) -> list[MapEntry]:
        """The maps worth the advice: the most wasteful, if they waste enough to matter."""
        return [m for m in self.maps[:ADVICE_MAPS] if m.waste >= ADVICE_MIN_WASTE and m.facts]
