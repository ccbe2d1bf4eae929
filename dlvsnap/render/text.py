"""The human view: one block per delete, a summary table at the end."""

from __future__ import annotations

from typing import IO

import click
from tabulate import tabulate

from dlvsnap.model import DELETED, EMPTY, EMPTY_ONE, EMPTY_REST, FULL, DeleteEvent, MapSnapshot, Memory, key_to_text

_STATE_COLOUR = {FULL: "green", EMPTY: "blue", EMPTY_ONE: "blue", EMPTY_REST: "cyan",
                 DELETED: "red"}


class TextRenderer:
    def __init__(self, out: IO[str], colour: bool) -> None:
        self.out = out
        self.colour = colour

    def _c(self, text: str, fg: str | None = None, bold: bool = False, dim: bool = False) -> str:
        if not self.colour:
            return text
        return click.style(text, fg=fg, bold=bold, dim=dim)

    def _state(self, byte: int, state: str) -> str:
        label = f"full(h2={byte:02x})" if state == FULL else state
        return self._c(f"0x{byte:02x} {label}", fg=_STATE_COLOUR.get(state))

    def start(self, what: str) -> None:
        self.out.write(self._c(what, dim=True) + "\n")

    def note(self, message: str) -> None:
        self.out.write(self._c("note: " + message, fg="yellow") + "\n")

    def event(self, ev: DeleteEvent, live_keys: bool) -> None:
        d = ev.diff
        head = f"#{ev.seq} {ev.op}"
        if ev.op == "delete":
            head += " key=" + (key_to_text(ev.key) if ev.key_decoded else "?")
        entry = ev.entry + (f" via {ev.via}" if ev.via else "")
        lines = [f"{self._c(head, bold=True)}  {ev.location}  ({entry})"]
        rows = [[c.loc.describe(), self._state(c.before_byte, c.before_state), "->",
                 self._state(c.after_byte, c.after_state),
                 "key " + key_to_text(c.key) if c.before_state == FULL else ""]
                for c in d.changes[:20]]
        if rows:
            table = tabulate(rows, tablefmt="plain", disable_numparse=True)
            lines += ["   " + ln for ln in table.splitlines()]
            if len(d.changes) > 20:
                lines.append(f"   … and {len(d.changes) - 20} more slot changes")
        elif ev.op == "delete":
            lines.append("   no slot changed" + (" (key absent)" if d.count_after == d.count_before else ""))
        deltas = [f"used {d.count_before} -> {d.count_after}"]
        several = len(ev.after.tables) > 1
        for idx, ch in d.table_changes.items():
            for f, (b, a) in ch.items():
                if f == "used" and not several:
                    continue  # the same as the header's used
                name = {"growth_left": "growthLeft"}.get(f, f)
                deltas.append(f"{name} {b} -> {a}" + (f" (table {idx})" if several else ""))
        for f, (b, a) in d.header_changes.items():
            if f == "used":
                continue
            if f == "seed":
                deltas.append(self._c("seed reseeded", fg="yellow"))
            else:
                deltas.append(f"{f} {b} -> {a}")
        if d.moved:
            deltas.append(self._c(f"header moved {d.moved[0]:#x} -> {d.moved[1]:#x}", fg="yellow"))
        lines.append("   " + "   ".join(deltas))
        lines.append("   " + self._holds(ev.after))
        if live_keys:
            keys = sorted(ev.after.live_keys(), key=lambda k: (str(type(k)), k if isinstance(k, (int, float, str)) else str(k)))
            lines.append("   live keys: " + ", ".join(key_to_text(k) for k in keys))
        for w in ev.before.warnings + ev.after.warnings:
            lines.append("   " + self._c("warning: " + w, fg="red"))
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()

    @staticmethod
    def _holds(s: MapSnapshot) -> str:
        m = s.memory
        if s.tables:
            where = f"{len(s.tables)} table{'s' if len(s.tables) != 1 else ''} / {m.groups // s.map_type.group_size} groups"
        else:
            where = "a small map's single group" if m.groups else "no groups"
        entries = "entry" if s.count == 1 else "entries"
        return f"holds {m.held:,} B in {where} for {s.count} live {entries}"

    def summary(self, deletes: int, clears: int, removed: int, absent: int,
                first: MapSnapshot | None, last: MapSnapshot | None) -> None:
        rows: list[list[str]] = [
            ["deletes seen", f"{deletes}" + (f" ({absent} of an absent key)" if absent else "")],
            ["clears seen", str(clears)],
            ["keys removed", str(removed)],
        ]
        if last is not None:
            rows += [
                ["tombstones left", str(last.tombstones())],
                ["live entries now", str(last.count)],
                ["map holds now", _bytes(last.memory)],
                ["live entries need", f"{last.memory.needed:,} B ({last.count} x {last.memory.entry_bytes} B)"],
            ]
        if first is not None:
            rows.append(["held before 1st delete", _bytes(first.memory)])
        self.out.write("\n" + self._c("summary", bold=True) + "\n")
        self.out.write(tabulate(rows, tablefmt="plain", disable_numparse=True) + "\n")
        if first is not None and last is not None:
            freed = first.memory.held - last.memory.held
            if freed <= 0:
                verdict = (f"deletes freed nothing: the map holds {last.memory.held:,} B for "
                           f"{last.memory.needed:,} B of live entries")
            else:
                verdict = f"the map holds {freed:,} B less than before the first delete"
            self.out.write(self._c(verdict, bold=True) + "\n")
        self.out.flush()


def _bytes(m: Memory) -> str:
    parts = [f"header {m.header}"]
    if m.directory:
        parts.append(f"directory {m.directory}")
    if m.tables:
        parts.append(f"tables {m.tables}")
    parts.append(f"groups {m.groups:,}")
    if m.indirect:
        parts.append(f"indirect keys/elems {m.indirect:,}")
    return f"{m.held:,} B ({', '.join(parts)})"
