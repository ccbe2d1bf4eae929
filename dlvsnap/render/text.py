"""The human view: one block per delete, a summary table at the end.

What the program controls (keys, source file names, function names) and what a saved file
holds (expressions, type names, locations) is made visible (dlvsnap.untrusted.visible)
where it enters a line, and every line is checked again on its way out: the only escape
sequences that reach a terminal are the colours this renderer adds itself."""

from __future__ import annotations

import io
import re
import textwrap
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

import click
import numpy as np
from tabulate import tabulate

from dlvsnap.model import (
    DELETED,
    EMPTY,
    EMPTY_ONE,
    EMPTY_REST,
    EVACUATED_EMPTY,
    EVACUATED_X,
    EVACUATED_Y,
    FULL,
    SEED_FIELD,
    DeleteEvent,
    KeyValue,
    MapDiff,
    MapSnapshot,
    Memory,
    RawKey,
    Slot,
    SlotChange,
    Summary,
    is_address_field,
    key_to_text,
    set_text_view,
)
from dlvsnap.phases import Figures, Phase, change, verdict
from dlvsnap.untrusted import visible
from dlvsnap.watch.options import exit_words

if TYPE_CHECKING:
    from dlvsnap.census.result import Census, MapEntry

# The sequences click.style writes for _c: reset, bold, dim, normal intensity, colours.
_SGR = re.compile(r"(\x1b\[(?:0|1|2|22|3[0-7]|9[0-7])m)")


def _visible_lines(text: str) -> str:
    return "\n".join(visible(line) for line in text.split("\n"))


_STATE_COLOUR = {
    FULL: "green",
    EMPTY: "blue",
    EMPTY_ONE: "blue",
    EMPTY_REST: "cyan",
    DELETED: "red",
}


class TextRenderer:
    def __init__(self, out: IO[str], colour: bool) -> None:
        self.out = out
        self.colour = colour

    def _c(self, text: str, fg: str | None = None, bold: bool = False, dim: bool = False) -> str:
        text = visible(text)
        if not self.colour:
            return text
        return click.style(text, fg=fg, bold=bold, dim=dim)

    def _write(self, text: str) -> None:
        """Write text whose untrusted parts were made visible where they entered it; any
        control character left (a place that forgot) is escaped here, except the colour
        sequences ``_c`` writes (a forgotten raw string could at worst change a colour:
        never move the cursor, clear, retitle, hide or reverse text)."""
        if self.colour:
            parts = _SGR.split(text)  # odd items: colour sequences
            text = "".join(p if i % 2 else _visible_lines(p) for i, p in enumerate(parts))
        else:
            text = _visible_lines(text)
        self.out.write(text)

    def _state(self, byte: int | None, state: str, classic: bool) -> str:
        if byte is None:
            return self._c(state, dim=True)
        label = f"full({'tophash' if classic else 'h2'}={byte:02x})" if state == FULL else state
        return self._c(f"0x{byte:02x} {label}", fg=_STATE_COLOUR.get(state))

    def start(self, what: str) -> None:
        self._write(self._c(what, dim=True) + "\n")

    def note(self, message: str) -> None:
        self._write(self._c("note: " + message, fg="yellow") + "\n")

    def event(self, ev: DeleteEvent, live_keys: bool) -> None:
        head = f"#{ev.seq} {visible(ev.map) + ' ' if ev.map else ''}{ev.op}"
        if ev.op != "clear":
            head += " key=" + (key_to_text(ev.key) if ev.key_decoded else "?")
        entry = visible(ev.entry + (f" via {ev.via}" if ev.via else ""))
        lines = [f"{self._c(head, bold=True)}  {visible(str(ev.location))}  ({entry})"]
        if ev.op == "assign" and not ev.diff.changes:
            lines.append("   no slot changed (key present: its value replaced in place)")
        elif ev.diff.changes or ev.op == "delete":
            lines += self._change_lines(ev.diff)
        lines.append("   " + "   ".join(self._deltas(ev.diff, ev.after)))
        lines.append("   " + self._holds(ev.after))
        if live_keys:
            keys = sorted(ev.after.live_keys(), key=_sort_key)
            lines.append("   live keys: " + ", ".join(key_to_text(k) for k in keys))
        for w in ev.all_warnings():
            lines.append("   " + self._c("warning: " + w, fg="red"))
        self._write("\n".join(lines) + "\n")
        self.out.flush()

    def diff_view(self, title: str, a: MapSnapshot, b: MapSnapshot, d: MapDiff) -> None:
        """Two snapshots of a map compared (``dlvsnap diff``): the same lines as an event."""
        lines = [self._c(title, bold=True)]
        lines += self._change_lines(d, limit=200, absent_note=False)
        lines.append("   " + "   ".join(self._deltas(d, b)))
        lines.append("   before: " + self._holds(a))
        lines.append("   after:  " + self._holds(b))
        self._write("\n".join(lines) + "\n")
        self.out.flush()

    def snapshot_view(self, title: str, snap: MapSnapshot, limit: int = 64) -> None:
        """The layout of one snapshot: the verdict (bytes held vs needed) first, then the
        slot counts, header, tables and every group/bucket with each slot's state (and key
        when full). ``limit`` tables and groups at most (0: all)."""
        out = [self._c(title, bold=True)]
        m = snap.memory
        out.append(self._c(self._holds(snap), bold=True))
        out.append(f"live entries need {m.needed:,} B ({snap.count:,} x {m.entry_bytes} B)")
        rows = snap.rows
        counts: dict[str, int] = {}
        for b, c in zip(*np.unique(rows.ctrl, return_counts=True), strict=True):
            counts[snap.states[int(b)]] = counts.get(snap.states[int(b)], 0) + int(c)
        n = rows.slots_per_row
        out.append(
            f"slots: {len(rows) * n:,} ("
            + ", ".join(f"{c:,} {st}" for st, c in sorted(counts.items()))
            + ")"
        )
        hdr = {k: v for k, v in snap.header.items() if not isinstance(v, dict)}
        out.append("header: " + "  ".join(f"{k}={_hexish(k, v)}" for k, v in hdr.items()))
        tables = snap.tables if limit <= 0 else snap.tables[:limit]
        for t in tables:
            out.append(
                f"table {t.index}: used {t.used}/{t.capacity}  growthLeft {t.growth_left}  "
                f"tombstones {t.tombstones}  localDepth {t.local_depth}  "
                f"{t.n_groups} groups at {t.groups_addr:#x}"
            )
        if len(tables) < len(snap.tables):
            more = len(snap.tables) - len(tables)
            out.append(f"… and {more} more tables (--limit 0 shows all)")
        shown = len(rows) if limit <= 0 else min(limit, len(rows))
        what = "bucket" if snap.impl == "classic" else "group"
        out.append(f"{len(rows)} {what}s x {n} slots:")
        for r in range(shown):
            label = rows.group_label(r)
            cells = [self._cell(snap.slot(r * n + i)) for i in range(n)]
            out.append(f"  {label:>10}  " + " ".join(cells))
        if shown < len(rows):
            out.append(f"  … and {len(rows) - shown} more {what}s (--limit 0 shows all)")
        self._write("\n".join(out) + "\n")
        self.out.flush()

    def phase_table(self, title: str, phases: list[Phase], asked: int, advice: str = "") -> None:
        """``snap --at A --at B``: a row per phase (live entries, capacity, tombstones,
        bytes held and needed, held per live entry, what changed), then the verdict."""
        rows = []
        prev: Figures | None = None
        for p in phases:
            f = p.figures
            per = "-" if f.per_live is None else f"{f.per_live:,.0f}"
            rows.append(
                [
                    str(p.n),
                    visible(p.at) or str(p.location),
                    f"{f.live:,}",
                    f"{f.capacity:,}",
                    f"{f.tombstones:,}",
                    f"{f.held:,}",
                    f"{f.needed:,}",
                    per,
                    "" if prev is None else change(prev, f),
                ]
            )
            prev = f
        head = ["", "at", "live", "slots", "tombstones", "held B", "needed B", "B/live", "changed"]
        align = ("right", "left", *("right",) * 6, "left")
        table = tabulate(rows, head, tablefmt="simple", disable_numparse=True, colalign=align)
        out = [self._c(title, bold=True), table]
        if len(phases) < asked:
            out.append(f"(stopped after phase {len(phases)} of {asked})")
        out += [self._c(ln, bold=True) for ln in textwrap.wrap(verdict(phases), _WRAP)]
        self._write("\n".join(out) + "\n")
        self._advice(advice)
        self.out.flush()

    def census_table(
        self, title: str, c: Census, shown: list[MapEntry], advice: list[tuple[MapEntry, str]]
    ) -> None:
        """``dlvsnap maps``: one row per map (most waste first), the totals, then the advice
        for the worst maps."""
        rows = [
            [
                f"{m.waste:,}",
                f"{m.figures.held:,}",
                f"{m.figures.live:,}",
                f"{m.figures.capacity:,}",
                f"{m.figures.tombstones:,}",
                visible(m.type_name),
                visible(m.path) + (" (beyond len)" if m.beyond_len else ""),
            ]
            for m in shown
        ]
        head = ["waste B", "held B", "live", "slots", "tombstones", "type", "path"]
        align = (*("right",) * 5, "left", "left")
        out = [self._c(title, bold=True)]
        if rows:
            out.append(
                tabulate(rows, head, tablefmt="simple", disable_numparse=True, colalign=align)
            )
        hidden = len(c.maps) - len(shown)
        more = f" ({hidden:,} not shown: --top, --min-bytes)" if hidden else ""
        pct = f" ({c.waste / c.held:.0%} of it)" if c.held else ""
        out.append(
            f"{len(c.maps):,} maps{more}: {c.held:,} B held, {c.needed:,} B needed by their "
            f"live entries, {c.waste:,} B wasted{pct}"
        )
        self._write("\n".join(out) + "\n")
        for m, said in advice:
            body = "\n".join(textwrap.wrap(said, _WRAP))
            self._write("\n" + self._c(f"{visible(m.path)}:", bold=True) + "\n" + body + "\n")
        self.out.flush()

    def _cell(self, slot: Slot) -> str:
        if slot.state == FULL:
            return self._c(key_to_text(slot.key), fg=_STATE_COLOUR[FULL])
        short = _SHORT.get(slot.state, slot.state)
        return self._c(
            short, fg=_STATE_COLOUR.get(slot.state), dim=slot.state in (EMPTY, EMPTY_REST)
        )

    def _change_lines(self, d: MapDiff, limit: int = 20, absent_note: bool = True) -> list[str]:
        if not d.changes:
            absent = " (key absent)" if absent_note and d.count_after == d.count_before else ""
            return [f"   no slot changed{absent}"]
        rows = [
            [
                c.loc.describe(),
                self._state(c.before_byte, c.before_state, c.loc.classic),
                "->",
                self._state(c.after_byte, c.after_state, c.loc.classic),
                _change_key(c),
            ]
            for c in d.changes[:limit]
        ]
        table = tabulate(rows, tablefmt="plain", disable_numparse=True)
        lines = ["   " + ln for ln in table.splitlines()]
        if len(d.changes) > limit:
            lines.append(f"   … and {len(d.changes) - limit} more slot changes")
        return lines

    def _deltas(self, d: MapDiff, after: MapSnapshot) -> list[str]:
        count = _count_field(after)
        deltas = [f"{count} {d.count_before} -> {d.count_after}"]
        several = after.n_tables > 1
        if len(d.table_changes) > _TABLES_ITEMISED:
            deltas += _table_totals(d.table_changes)
        else:
            for idx, ch in d.table_changes.items():
                for f, (b, a) in ch.items():
                    if f == "used" and not several:
                        continue  # the same as the header's used
                    name = _TABLE_FIELD_NAMES.get(f, f)
                    was, now = _hexish(f, b), _hexish(f, a)
                    deltas.append(f"{name} {was} -> {now}" + (f" (table {idx})" if several else ""))
        for f, (b, a) in d.header_changes.items():
            if f in SEED_FIELD.values():
                deltas.append(self._c(f"{f} reseeded", fg="yellow"))
            elif f != count:
                deltas.append(f"{f} {_hexish(f, b)} -> {_hexish(f, a)}")
        if d.moved:
            deltas.append(self._c(f"header moved {d.moved[0]:#x} -> {d.moved[1]:#x}", fg="yellow"))
        return deltas

    @staticmethod
    def _holds(s: MapSnapshot) -> str:
        m = s.memory
        parts = m.structural or m  # counts of groups by their types' sizes, not the allocator's
        if s.impl == "classic":
            nb = 1 << int(s.header["B"]) if m.groups else 0
            where = f"{nb:,} bucket{'s' if nb != 1 else ''}"
            if parts.overflow:
                where += f" + {parts.overflow // s.map_type.group_size} overflow"
            if m.old:
                where += " + old buckets (growing)"
        elif s.n_tables:
            n_groups = parts.groups // s.map_type.group_size
            plural = "s" if s.n_tables != 1 else ""
            where = f"{s.n_tables:,} table{plural} / {n_groups:,} groups"
        else:
            where = "a small map's single group" if m.groups else "no groups"
        entries = "entry" if s.count == 1 else "entries"
        return f"holds {m.held:,} B in {where} for {s.count:,} live {entries}"

    def summary(self, s: Summary, map_name: str = "") -> None:
        """The watch's summary (of ``map_name`` when several maps were watched)."""
        first, last = s.first, s.last
        absent = f" ({s.absent_deletes} of an absent key)" if s.absent_deletes else ""
        rows: list[list[str]] = [
            ["deletes seen", f"{s.deletes}{absent}"],
            ["clears seen", str(s.clears)],
            ["keys removed", str(s.keys_removed)],
        ]
        if s.assigns:
            rows.append(["assigns seen", f"{s.assigns} ({s.keys_added} new keys)"])
        if last is not None:
            if last.impl == "swiss":
                rows.append(["tombstones left", str(s.tombstones)])
            rows += [
                ["live entries now", str(last.count)],
                ["map holds now", _bytes(last.memory, last.impl)],
                [
                    "live entries need",
                    f"{last.memory.needed:,} B ({last.count} x {last.memory.entry_bytes} B)",
                ],
            ]
        if first is not None:
            rows.append(["held before 1st delete", _bytes(first.memory, first.impl)])
        if s.mode:
            rows.append(["stopped by", _MODE_WORDS.get(s.mode, s.mode)])
        if s.missed:
            rows.append(["calls not recorded", f"{s.missed} (started while another was in flight)"])
        rows += self._end_rows(s)
        title = f"summary of {visible(map_name)}" if map_name else "summary"
        self._write("\n" + self._c(title, bold=True) + "\n")
        self._write(tabulate(rows, tablefmt="plain", disable_numparse=True) + "\n")
        if first is not None and last is not None:
            freed = first.memory.held - last.memory.held
            if freed <= 0:
                verdict = (
                    f"deletes freed nothing: the map holds {last.memory.held:,} B for "
                    f"{last.memory.needed:,} B of live entries"
                )
            else:
                verdict = f"the map holds {freed:,} B less than before the first delete"
            self._write(self._c(verdict, bold=True) + "\n")
        self._advice(s.advice)
        self.out.flush()

    def _advice(self, text: str) -> None:
        """The advice paragraph (dlvsnap.advice), wrapped, after a blank line."""
        if text:
            self._write("\n" + "\n".join(textwrap.wrap(text, _WRAP)) + "\n")

    @staticmethod
    def _end_rows(s: Summary) -> list[list[str]]:
        """Where the watch ended, the map there (--until), and what became of the program."""
        rows: list[list[str]] = []
        if s.ended == "exit" and s.exit_status is not None:
            rows.append(["watch ended", f"at the program's end: {exit_words(s.exit_status)}"])
        elif s.ended == "until" and s.ended_at is not None:
            where = f"{visible(str(s.ended_at))} (goroutine {s.ended_goroutine})"
            rows.append(["watch ended", f"at --until: {where}"])
        elif s.ended:
            rows.append(["watch ended", _ENDED.get(s.ended, s.ended)])
        f = s.final
        snap = f.snapshot if f is not None else None
        if f is not None and snap is not None:
            tombstones = f", {snap.tombstones} tombstones" if snap.impl == "swiss" else ""
            m = snap.memory
            rows += [
                ["at --until: entries", f"{snap.count} live in {f.capacity:,} slots{tombstones}"],
                ["at --until: holds", _bytes(m, snap.impl)],
                ["at --until: need", f"{m.needed:,} B ({snap.count} x {m.entry_bytes} B)"],
            ]
            if f.note:
                rows.append(["at --until: read", visible(f.note)])
        elif f is not None:
            rows.append(["at --until: map", f"not read: {visible(f.note)}"])
        if s.after == "ran_on" and s.exit_status is not None:
            rows.append(["then", f"the program ran on unwatched: {exit_words(s.exit_status)}"])
        elif s.after:
            rows.append(["then", _AFTER.get(s.after, s.after)])
        return rows


_ENDED = {
    "max_events": "at --max-events",
    "stop": "at a stop of yours (see the note above)",
}

_AFTER = {
    "killed": "the program was killed (--kill)",
    "released": "the program was released, running (--attach)",
    "stopped": "the program is left stopped where it is (--connect)",
    "interrupted": "dlvsnap was interrupted while the program ran on: it was killed",
}

_WRAP = 96  # prose (verdicts, advice) wraps here

_MODE_WORDS = {
    "watchpoint": "a watchpoint on the map's header (other maps ran free)",
    "breakpoints": "breakpoints on the runtime's map entry points (every map's calls stopped)",
}

_SHORT = {
    EMPTY: "·",
    DELETED: "DEL",
    EMPTY_ONE: "e1",
    EMPTY_REST: "·",
    EVACUATED_X: "evX",
    EVACUATED_Y: "evY",
    EVACUATED_EMPTY: "ev·",
}


def _hexish(name: str, v: object) -> str:
    """Pointers and seeds in hex, the rest as Go prints them."""
    if (
        isinstance(v, int)
        and not isinstance(v, bool)
        and (name in (*SEED_FIELD.values(), "extra") or (is_address_field(name) and v))
    ):
        return f"{v:#x}"
    return _go(v)


# A diff that changed more tables than this sums up each field over the tables.
_TABLES_ITEMISED = 4
_TABLE_FIELD_NAMES = {
    "growth_left": "growthLeft",
    "local_depth": "localDepth",
    "n_groups": "groups",
    "groups_addr": "groups at",
}


def _table_totals(changes: dict[int, dict[str, tuple[int, int]]]) -> list[str]:
    """Per-table changes summed up by field: "128 tables: growthLeft +N total"; an address
    field says how many tables' groups moved."""
    by_field: dict[str, list[tuple[int, int]]] = {}
    for ch in changes.values():
        for f, ba in ch.items():
            by_field.setdefault(f, []).append(ba)
    out = []
    for f, pairs in by_field.items():
        name, n = _TABLE_FIELD_NAMES.get(f, f), len(pairs)
        tables = f"{n} table{'s' if n != 1 else ''}"
        if f == "groups_addr":
            out.append(f"{tables}: groups moved")
        else:
            total = sum(a - b for b, a in pairs)
            out.append(f"{tables}: {name} {total:+,} total")
    return out


def _go(v: object) -> str:
    """A header value as Go prints it (true/false, not True/False)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _change_key(c: SlotChange) -> str:
    """The key of a changed slot: the one it held, or the one it was given (an insert)."""
    if c.before_state == FULL:
        return "key " + key_to_text(c.key)
    if c.after_state == FULL:
        return "key " + key_to_text(c.after_key)
    return ""


def _sort_key(k: KeyValue) -> tuple[int, object]:
    if isinstance(k, (int, float)):
        return (0, k)
    if isinstance(k, str):
        return (1, k)
    if isinstance(k, RawKey):
        return (2, k.data)
    if k is not None:
        return (3, key_to_text(k))
    return (4, 0)


def _count_field(s: MapSnapshot) -> str:
    return "count" if s.impl == "classic" else "used"


def _bytes(m: Memory, impl: str) -> str:
    parts = [f"header {m.header}"]
    if m.directory:
        parts.append(f"directory {m.directory}")
    if m.tables:
        parts.append(f"tables {m.tables}")
    if impl == "classic":
        parts.append(f"buckets {m.groups:,}")
        if m.overflow:
            parts.append(f"overflow buckets {m.overflow:,}")
        if m.old:
            parts.append(f"old buckets {m.old:,}")
    else:
        parts.append(f"groups {m.groups:,}")
    if m.indirect:
        parts.append(f"indirect keys/elems {m.indirect:,}")
    return f"{m.held:,} B ({', '.join(parts)})"


def _render(fn: Callable[[TextRenderer], None]) -> str:
    buf = io.StringIO()
    fn(TextRenderer(buf, colour=False))
    return buf.getvalue().rstrip("\n")


def snapshot_text(snap: MapSnapshot, limit: int = 64) -> str:
    """str(MapSnapshot): the layout view of `dlvsnap snap`."""
    title = f"{snap.impl} map at {snap.addr:#x}, layout {snap.layout}"
    if snap.partial:
        title += " (partial: the groups/buckets one delete could touch)"
    return _render(lambda r: r.snapshot_view(title, snap, limit))


def event_text(ev: DeleteEvent) -> str:
    """str(DeleteEvent): the block `dlvsnap watch` prints for it."""
    return _render(lambda r: r.event(ev, live_keys=False))


def diff_text(d: MapDiff) -> str:
    """str(MapDiff): its slot transitions and header deltas."""
    lines = TextRenderer(io.StringIO(), colour=False)._change_lines(d, limit=200, absent_note=False)
    lines.append(f"   count {d.count_before} -> {d.count_after}")
    lines += [f"   {k} {_go(b)} -> {_go(a)}" for k, (b, a) in d.header_changes.items()]
    return _visible_lines("\n".join(lines))


def text_view(obj: object) -> str:
    """``str()`` of the model's objects: the views above (installed in dlvsnap.model)."""
    if isinstance(obj, MapSnapshot):
        return snapshot_text(obj)
    if isinstance(obj, MapDiff):
        return diff_text(obj)
    if isinstance(obj, DeleteEvent):
        return event_text(obj)
    if isinstance(obj, Summary):  # what `dlvsnap watch` prints at its end
        buf = io.StringIO()
        TextRenderer(buf, colour=False).summary(obj)
        return buf.getvalue().strip("\n")
    return repr(obj)


set_text_view(text_view)
