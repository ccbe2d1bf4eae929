"""Phases: one map's snapshots at several stops of one process (``snap --at A --at B``),
summed up as figures per phase, what changed from one phase to the next, and the verdict
on the memory question. Pure: works from decoded snapshots, speaks no Delve."""

from __future__ import annotations

from dataclasses import dataclass

from dlvsnap.model import EMPTY_ONE, Location, MapSnapshot


@dataclass(frozen=True)
class Figures:
    """What one snapshot says about the memory question."""

    live: int  # live entries
    capacity: int  # slots in every group/bucket the map holds (overflow, old buckets too)
    # swiss: slots in state deleted; classic: emptyOne slots (emptied by a delete, not yet
    # known to end their bucket chain: lookups still scan past them)
    tombstones: int
    held: int  # bytes the map holds (docs/memory-accounting.md)
    needed: int  # bytes its live entries need (live x (key + elem size))
    addr: int  # the header's address

    @classmethod
    def of(cls, snap: MapSnapshot) -> Figures:
        if snap.impl == "classic":
            one = snap.states.index(EMPTY_ONE) if EMPTY_ONE in snap.states else -1
            tombstones = int((snap.rows.ctrl == one).sum()) if one >= 0 else 0
        else:
            tombstones = snap.tombstones
        return cls(
            live=snap.count,
            capacity=len(snap.rows) * snap.rows.slots_per_row,
            tombstones=tombstones,
            held=snap.memory.held,
            needed=snap.memory.needed,
            addr=snap.addr,
        )

    @property
    def per_live(self) -> float | None:
        """Bytes held per live entry (None: no live entry)."""
        return self.held / self.live if self.live else None

    @property
    def waste(self) -> int:
        """Bytes held beyond what the live entries need."""
        return max(self.held - self.needed, 0)

    def to_json(self) -> dict[str, object]:
        return {
            "live_entries": self.live,
            "capacity_slots": self.capacity,
            "tombstones": self.tombstones,
            "held_bytes": self.held,
            "needed_bytes": self.needed,
            "held_per_live_entry": None if self.per_live is None else round(self.per_live, 1),
            "addr": f"{self.addr:#x}",
        }


@dataclass(frozen=True)
class Phase:
    """One stop: the location asked for (``at``), where the program was, and the map."""

    n: int  # 1, 2, ...
    at: str
    location: Location
    figures: Figures


def change(prev: Figures, cur: Figures) -> str:
    """What changed from ``prev`` to ``cur``, in a line ("" for the first phase's None)."""
    if cur.addr != prev.addr:
        return f"another map: the header moved {prev.addr:#x} -> {cur.addr:#x}"
    parts = []
    for what, a, b, unit in (
        ("live", prev.live, cur.live, ""),
        ("capacity", prev.capacity, cur.capacity, " slots"),
        ("tombstones", prev.tombstones, cur.tombstones, ""),
        ("held", prev.held, cur.held, " B"),
    ):
        if a != b:
            parts.append(f"{what} {b - a:+,}{unit}")
    if prev.held == cur.held:
        parts.append("held unchanged")
    return ", ".join(parts) if parts else "nothing"


def verdict(phases: list[Phase]) -> str:
    """The memory question over the phases, in a sentence: did the bytes held follow the
    live entries down?"""
    if not phases:
        return ""
    first, last = phases[0].figures, phases[-1].figures
    peak = max(phases, key=lambda p: p.figures.held)
    if len(phases) == 1:
        return holds(last)
    if last.addr != first.addr:
        return (
            f"the map at the last phase is another map than at the first ({first.addr:#x} -> "
            f"{last.addr:#x}): {holds(last)}"
        )
    fell = peak.figures.live - last.live
    if fell <= 0:
        return (
            f"live entries at the last phase ({last.live:,}) are as many as at the peak "
            f"(phase {peak.n}): {holds(last)}"
        )
    freed = peak.figures.held - last.held
    said = f"live entries fell {peak.figures.live:,} -> {last.live:,} after phase {peak.n}"
    if freed <= 0:
        return f"{said} and the map freed nothing: {holds(last)}"
    return f"{said} and the map holds {freed:,} B less than at its peak: {holds(last)}"


def holds(f: Figures) -> str:
    """Bytes held against bytes needed, in a clause."""
    entries = "entry" if f.live == 1 else "entries"
    return (
        f"it holds {f.held:,} B for {f.live:,} live {entries}, which need {f.needed:,} B "
        f"({f.waste:,} B held for nothing)"
    )
