"""MapWatch: the watch loop. It runs the program from stop to stop (stops.py), tells the
watched maps' calls from the others (watched.py, resolve.py), has each watched call
recorded (recorder.py), and hands events and notes to the caller. Several maps
(``--map a --map b``) share the stops; each has its own resolution, recording and summary,
and its events say which map they are of. With ``--until LOCATION`` the watch ends where
the program reaches it, with a final snapshot of each map there (until.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from dlvsnap.advice import MapFacts, advice
from dlvsnap.decode import Decoder, decode_map_type, make_decoder
from dlvsnap.delve.expr import normalise_expr
from dlvsnap.errors import DlvsnapError, MapResolutionError, NoDeletesError
from dlvsnap.goversion import release_of
from dlvsnap.kinds import HASH_CANNOT_PANIC
from dlvsnap.layouts import Layout
from dlvsnap.memory import MemoryReader
from dlvsnap.model import DeleteEvent, FinalSnapshot, Summary, TypeCatalog
from dlvsnap.session import Session
from dlvsnap.snap import type_catalog
from dlvsnap.verify import choose_layout, inexact_note
from dlvsnap.watch import until
from dlvsnap.watch.hits import Hit, Reached, UsersStop
from dlvsnap.watch.options import Note, WatchOptions, exit_words
from dlvsnap.watch.recorder import Recorder
from dlvsnap.watch.resolve import Resolver
from dlvsnap.watch.stops import StopSource
from dlvsnap.watch.trust import HashTrust, aes_hasher
from dlvsnap.watch.watched import WatchedMap
from dlvsnap.watch.where import FrameChoice, Site


@dataclass
class _Map:
    """One watched map: how it is named, recognised, recorded and summed up."""

    index: int  # its place in WatchOptions.exprs
    shown: str  # as the user named it
    watched: WatchedMap
    resolver: Resolver
    recorder: Recorder
    summary: Summary
    map_type: int = 0  # the type descriptor its calls were given (0: none seen)
    # --until, a map on a goroutine's stack: the frame that held it at its first call
    held_by: until.Holder | None = None


class MapWatch:
    def __init__(
        self,
        session: Session,
        opts: WatchOptions,
        on_event: Callable[[DeleteEvent], None],
        on_note: Callable[[Note], None] | None = None,
    ) -> None:
        self.session = session
        self.opts = opts
        self.on_event = on_event
        self.on_note = on_note or (lambda n: None)
        binary = session.target
        self.layout: Layout = choose_layout(binary)  # LayoutDriftError: never unchecked
        if not self.layout.exact:
            self.on_note(Note("layout", inexact_note(self.layout), {"layout": self.layout.name}))
        choice = FrameChoice(opts.in_func, opts.frame, Site.of(opts.site) if opts.site else None)
        hasher = aes_hasher(binary, session.load_bias)
        self.maps: list[_Map] = []
        for i, expr in enumerate(opts.exprs):
            shown = opts.shown if i == 0 else expr
            w = WatchedMap()
            resolver = Resolver(
                session.client, normalise_expr(expr), shown, choice, binary.optimised
            )
            trust = HashTrust(hasher, self._map_notes(i), full=opts.full)
            rec = Recorder(opts, trust, w)
            self.maps.append(_Map(i, shown, w, resolver, rec, Summary()))
        first = self.maps[0]  # one map: what the API and the tests read
        self.watched, self.resolver, self.summary = first.watched, first.resolver, first.summary
        self.stops = StopSource(
            session,
            [m.watched for m in self.maps],
            opts.ops,
            deep=choice.needs_stack,
            mode=opts.mode,
            writing_flag=self.layout.writing_flag,
        )
        self._events = 0  # of every map
        self._decoders: dict[int, Decoder] = {}  # by map type
        self._types: TypeCatalog | None = None  # the binary's DWARF types, when a key needs them
        self._calls_seen = 0  # calls on any map, before the watched one was known

    @property
    def summaries(self) -> list[Summary]:
        """Each watched map's summary, in the order the maps were given."""
        return [m.summary for m in self.maps]

    @property
    def several(self) -> bool:
        return len(self.maps) > 1

    def _map_notes(self, i: int) -> Callable[[Note], None]:
        """Notes about map ``i``: they say which map when there are several."""

        def note(n: Note) -> None:
            if self.several:
                n = Note(
                    n.kind,
                    f"{self.maps[i].shown}: {n.message}",
                    {**n.data, "map": self.maps[i].shown},
                )
            self.on_note(n)

        return note

    def run(self) -> Summary:
        """Watch until the program exits, ``max_events``, ``until`` LOCATION, or (a program
        dlvsnap did not start) it stops for another reason: a breakpoint of the user's, a
        halt. The breakpoints dlvsnap placed are removed when it stops watching. The
        (first) map's summary; every map's in ``summaries``."""
        for _ in self.events():
            pass
        return self.summary

    def events(self) -> Iterator[DeleteEvent]:
        """The same watch as a generator: each event as it is recorded (after on_event).
        Closing it early leaves the program stopped after the last delete yielded. dlvsnap's
        breakpoints are removed at the end, except on Ctrl-C/SIGTERM, when a call may be in
        flight on the connection: the Session's clean-up handles that case."""
        try:
            yield from self._loop()
        except (GeneratorExit, Exception):
            self._clear()
            raise
        self._clear()

    def _clear(self) -> None:
        for m in self.maps:
            m.summary.mode = self.stops.mode_of(m.index)
            m.summary.mode_why = self.stops.fallback.get(m.index, "")
            self._advise(m.summary)
        status = self.stops.clear()
        if status is not None:
            self._exit_status(status)

    def _advise(self, s: Summary) -> None:
        """The advice paragraph on the map as the watch left it (its final snapshot at
        --until, else the last event's), with what it held before the first delete."""
        now = s.final.snapshot if s.final is not None and s.final.snapshot else s.last
        if now is None:
            return
        release = release_of(self.session.target.go_version)
        before = s.first.memory.held if s.first is not None else None
        s.advice = advice(MapFacts.of(now, self.layout, release), held_before=before)

    def _exit_status(self, status: int) -> None:
        for m in self.maps:
            m.summary.exit_status = status

    def _stopped_early(self, ended: str) -> None:
        for m in self.maps:
            m.summary.stopped_early = True
            m.summary.ended = ended

    @property
    def ended_early(self) -> bool:
        """Whether the watch ended before the program did (max_events, until, a stop)."""
        return self.summary.stopped_early

    def run_on(self) -> int:
        """After a watch that ended before the program: run it to its end with none of
        dlvsnap's breakpoints and watchpoints, unwatched (its output as it comes). Its
        exit status, also in every summary (``after``: "ran_on")."""
        status = self.session.run_to_end()
        for m in self.maps:
            m.summary.exit_status = status
            m.summary.after = "ran_on"
        return status

    def _loop(self) -> Iterator[DeleteEvent]:
        for m in self.maps:
            m.resolver.check_places()
            m.resolver.static(m.watched)
        if self.opts.until:
            self.stops.until_ids = until.place(self.session, self.opts.until)
        self.stops.place()
        while True:
            stop = self.stops.next()
            for i, note in stop.notes:
                self._map_notes(i)(note)
            if stop.exited:
                self._exit_status(stop.exit_status)
                self._finish(stop.exit_status)
                return
            if stop.until is not None:  # calls starting at this stop come after LOCATION
                self._until(stop.until)
                return
            if stop.passed and not stop.has_hits and not stop.users_stop:
                continue
            if not stop.has_hits and self.session.mode != "launch":
                self._stopped(stop.users_stop or "a stop dlvsnap did not ask for (halt?)")
                return
            for hit in stop.hits():
                self._calls_seen += 1
                watched = self._which(hit)
                if watched is None:
                    continue
                try:
                    event, users_stop = self._record(hit, watched)
                except UsersStop as why:
                    msg = (
                        f"the program stopped at {why} during a watched call, which is "
                        "not reported: watch ends here"
                    )
                    self.on_note(Note("stopped", msg))
                    self._stopped_early("stop")
                    return
                yield event
                if self._ends_after_event(users_stop):
                    return
                break  # ending the call resumed the target: other hits of this stop are gone

    def _ends_after_event(self, users_stop: str) -> bool:
        """Whether the watch ends after the event just yielded: --until LOCATION reached
        while it was in flight, a stop of the user's at its end, ``max_events``."""
        if self.stops.until_reached is not None:
            self._until(self.stops.until_reached)
        elif users_stop:
            self._stopped(users_stop)
        elif self.opts.max_events is not None and self._events >= self.opts.max_events:
            self._stopped_early("max_events")
        else:
            return False
        return True

    def _stopped(self, why: str) -> None:
        self.on_note(Note("stopped", f"the program stopped at {why}: watch ends here"))
        self._stopped_early("stop")

    def _until(self, reached: Reached) -> None:
        """The program reached ``--until`` LOCATION: the watch ends, with each map's final
        snapshot there (in flight: at the end of the call that was running meanwhile)."""
        if reached.in_flight:
            self.on_note(
                Note(
                    "until",
                    f"goroutine {reached.goroutine} reached {reached.location} (--until) while "
                    "a watched call was in flight: the watch ends at that call's end, where "
                    "the final snapshots are read",
                    {"goroutine": reached.goroutine},
                )
            )
        else:
            self.stops.select(reached.goroutine)  # where the program is left stopped
        self._stopped_early("until")
        for m in self.maps:
            m.summary.ended_at, m.summary.ended_goroutine = reached.location, reached.goroutine
            m.summary.final = self._final(m, reached)

    def _final(self, m: _Map, reached: Reached) -> FinalSnapshot:
        """Map ``m`` where the program reached LOCATION, decoded as its events are."""
        try:
            found = until.find(
                self.session,
                reached,
                expr=m.resolver.expr,
                shown=m.shown,
                watched=m.watched,
                in_func=self.opts.in_func,
                held_by=m.held_by,
            )
            type_addr = found.type_addr or m.map_type
            if not found.addr or not type_addr:
                return FinalSnapshot(None, "none", found.note or "the map's type is not known")
            mem = self.session.memory(found.addr, 8)
            snap = self._decoder(type_addr, mem).snapshot(found.addr)
        except DlvsnapError as e:
            return FinalSnapshot(None, "none", f"it could not be read there: {e}")
        return FinalSnapshot(snap, found.how, found.note)

    def _which(self, hit: Hit) -> _Map | None:
        """The watched map this hit is a call of (None: another map's). A watchpoint's trap
        says; a breakpoint's hit matched the condition of one of the maps it watches, or
        is one of a map still being resolved."""
        if hit.map_index >= 0:
            return self._followed(self.maps[hit.map_index], hit)
        on_bps = [m for m in self.maps if self.stops.mode_of(m.index) == "breakpoints"]
        for m in on_bps:
            w = m.watched
            if not w.known:
                if m.resolver.discover(hit, w):
                    self.stops.retarget()
                    return m
                continue
            if w.mode == "var" and hit.map_addr == 0:
                m.resolver.nil_seen = m.resolver.nil_seen or hit.location
                continue
            # one map known and alone on the breakpoints: its condition matched this call
            alone = len(on_bps) == 1
            if alone or w.matches(hit, self.stops.variable_now(w)):
                return self._followed(m, hit)
        return None

    def _followed(self, m: _Map, hit: Hit) -> _Map:
        note = m.watched.follow(hit, m.shown)
        if note is not None:
            self._map_notes(m.index)(note)
        return m

    def _decoder(self, map_type: int, mem: MemoryReader) -> Decoder:
        """One decoder per map type (the reader is the session's, chosen once)."""
        dec = self._decoders.get(map_type)
        if dec is None:
            if self._types is None:
                self._types = type_catalog(self.session)
            mt = decode_map_type(self.layout, mem, map_type, self._types)
            dec = self._decoders[map_type] = make_decoder(self.layout, mem, mt, self._types)
        return dec

    def _record(self, hit: Hit, m: _Map) -> tuple[DeleteEvent, str]:
        """The event of one watched call, and a breakpoint of the user's that stopped the
        program where the call ended ("" if none)."""
        mem = self.session.memory(hit.map_addr, 8)
        dec = self._decoder(hit.map_type, mem)
        m.map_type = hit.map_type
        if self.opts.until and m.watched.mode == "stack" and m.held_by is None:
            with contextlib.suppress(DlvsnapError):  # unknown: the final read checks the SP
                m.held_by = until.holder(self.session.client, m.watched)
        call = self.stops.call(hit, may_panic=dec.keys.kt.kind not in HASH_CANNOT_PANIC)
        n = self.opts.max_events
        last = n is not None and self._events + 1 >= n
        arming = self.stops.arming(m.index)  # then the program stays stopped after the call
        r = m.recorder.record(hit, call, dec, mem, last_event=last or arming)
        summary = m.summary
        summary.count(r.op, r.before.count, r.after.count)
        self._events += 1
        if summary.first is None:
            summary.first = r.before
        summary.last = r.after
        if r.header_after != hit.map_addr:
            m.watched.header = r.header_after
        ev = DeleteEvent(
            seq=self._events,
            op=r.op,
            entry=hit.entry,
            via=hit.via,
            goroutine=hit.goroutine,
            location=hit.location,
            key=r.key,
            key_decoded=r.key_decoded,
            before=r.before,
            after=r.after,
            diff=r.diff,
            warnings=r.warnings,
            map=m.shown if self.several else "",
        )
        self.on_event(ev)
        self._missed(m)
        if arming and not last and not r.end.ends_watch:
            self._arm(m, hit.map_type)
        return ev, r.end.users_stop

    def _missed(self, m: _Map) -> None:
        """Watched calls other goroutines started while this one was in flight: said."""
        missed, self.stops.missed = self.stops.missed, []
        if missed:
            m.summary.missed += len(missed)
            self.on_note(
                Note(
                    "missed",
                    f"{len(missed)} watched call(s) started while another was in flight, not "
                    f"recorded ({', '.join(missed[:3])}{', ...' if len(missed) > 3 else ''}): "
                    "a call's end lets every goroutine run",
                    {"count": len(missed)},
                )
            )

    def _arm(self, m: _Map, map_type: int) -> None:
        said = self.stops.arm(m.index, map_type)
        if said:
            data: dict[str, object] = {"mode": self.stops.mode_of(m.index)}
            if m.index in self.stops.fallback:
                data["fallback"] = True
            self._map_notes(m.index)(Note("mode", said, data))

    def _finish(self, exit_status: int) -> None:
        """At exit: how the program ended if not with status 0; why no delete was seen (an
        error when no map had one; a note for each map that had none)."""
        for m in self.maps:
            m.summary.ended = "exit"
        if self.opts.until:
            self.on_note(
                Note(
                    "until",
                    f"the program {exit_words(exit_status)} before it reached {self.opts.until}",
                    {"exit_status": exit_status},
                )
            )
        if self._events:
            for m in self.maps:
                if not m.summary.events:
                    said = m.resolver.failure(m.watched.known) or "no call on it was seen"
                    self.on_note(Note("unseen", f"{m.shown}: {said}", {"map": m.shown}))
            if exit_status:
                self.on_note(
                    Note(
                        "exited",
                        f"the program {exit_words(exit_status)}",
                        {"exit_status": exit_status},
                    )
                )
            return
        for m in self.maps:
            reason = m.resolver.failure(m.watched.known)
            if reason is not None:
                raise MapResolutionError(reason)
        where = f" from {self.opts.shown}" if self._calls_seen else ""
        raise NoDeletesError(f"the program {exit_words(exit_status)} before any delete{where}")
