"""MapWatch: the watch loop. It runs the program from stop to stop (stops.py), tells the
watched map's calls from the others (watched.py, resolve.py), has each watched call
recorded (recorder.py), and hands events and notes to the caller."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from dlvsnap.decode import Decoder, decode_map_type, make_decoder
from dlvsnap.delve.expr import normalise_expr
from dlvsnap.errors import MapResolutionError, NoDeletesError
from dlvsnap.kinds import HASH_CANNOT_PANIC
from dlvsnap.layouts import Layout
from dlvsnap.memory import MemoryReader
from dlvsnap.model import DeleteEvent, Summary, TypeCatalog
from dlvsnap.session import Session
from dlvsnap.snap import type_catalog
from dlvsnap.verify import choose_layout, inexact_note
from dlvsnap.watch.hits import Hit, UsersStop
from dlvsnap.watch.options import Note, WatchOptions, exit_words
from dlvsnap.watch.recorder import Recorder
from dlvsnap.watch.resolve import Resolver
from dlvsnap.watch.stops import StopSource
from dlvsnap.watch.trust import HashTrust, aes_hasher
from dlvsnap.watch.watched import WatchedMap
from dlvsnap.watch.where import FrameChoice, Site


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
        self.watched = WatchedMap()
        self.summary = Summary()
        choice = FrameChoice(opts.in_func, opts.frame, Site.of(opts.site) if opts.site else None)
        self.resolver = Resolver(
            session.client, normalise_expr(opts.expr), opts.shown, choice, binary.optimised
        )
        self.stops = StopSource(
            session,
            self.watched,
            opts.ops,
            deep=choice.needs_stack,
            mode=opts.mode,
            writing_flag=self.layout.writing_flag,
        )
        trust = HashTrust(aes_hasher(binary, session.load_bias), self.on_note, full=opts.full)
        self.recorder = Recorder(opts, trust, self.watched)
        self._decoders: dict[int, Decoder] = {}  # by map type
        self._types: TypeCatalog | None = None  # the binary's DWARF types, when a key needs them
        self._calls_seen = 0  # calls on any map, before the watched one was known

    def run(self) -> Summary:
        """Watch until the program exits, ``max_events``, or (a program dlvsnap did not
        start) it stops for another reason: a breakpoint of the user's, a halt. The
        breakpoints dlvsnap placed are removed when it stops watching."""
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
        self.summary.mode, self.summary.mode_why = self.stops.mode_in_use, self.stops.fallback
        status = self.stops.clear()
        if status is not None:
            self.summary.exit_status = status

    def _loop(self) -> Iterator[DeleteEvent]:
        self.resolver.check_places()
        self.resolver.static(self.watched)
        self.stops.place()
        while True:
            stop = self.stops.next()
            for note in stop.notes:
                self.on_note(note)
            if stop.exited:
                self.summary.exit_status = stop.exit_status
                self._finish(stop.exit_status)
                return
            if stop.passed and not stop.has_hits and not stop.users_stop:
                continue
            if not stop.has_hits and self.session.mode != "launch":
                self._stopped(stop.users_stop or "a stop dlvsnap did not ask for (halt?)")
                return
            for hit in stop.hits():
                self._calls_seen += 1
                if not self._is_watched(hit):
                    continue
                try:
                    event, users_stop = self._record(hit)
                except UsersStop as why:
                    msg = (
                        f"the program stopped at {why} during a watched call, which is "
                        "not reported: watch ends here"
                    )
                    self.on_note(Note("stopped", msg))
                    self.summary.stopped_early = True
                    return
                yield event
                if users_stop:
                    self._stopped(users_stop)
                    return
                if self.opts.max_events is not None and self.summary.events >= self.opts.max_events:
                    self.summary.stopped_early = True
                    return
                break  # ending the call resumed the target: other hits of this stop are gone

    def _stopped(self, why: str) -> None:
        self.on_note(Note("stopped", f"the program stopped at {why}: watch ends here"))
        self.summary.stopped_early = True

    def _is_watched(self, hit: Hit) -> bool:
        w = self.watched
        if not w.known:
            if not self.resolver.discover(hit, w):
                return False
            self.stops.retarget()
            return True
        if w.mode == "var" and hit.map_addr == 0:
            self.resolver.nil_seen = self.resolver.nil_seen or hit.location
            return False
        note = w.follow(hit, self.opts.shown)
        if note is not None:
            self.on_note(note)
        return True  # the breakpoint condition already matched this map

    def _decoder(self, map_type: int, mem: MemoryReader) -> Decoder:
        """One decoder per map type (the reader is the session's, chosen once)."""
        dec = self._decoders.get(map_type)
        if dec is None:
            if self._types is None:
                self._types = type_catalog(self.session)
            mt = decode_map_type(self.layout, mem, map_type, self._types)
            dec = self._decoders[map_type] = make_decoder(self.layout, mem, mt, self._types)
        return dec

    def _record(self, hit: Hit) -> tuple[DeleteEvent, str]:
        """The event of one watched call, and a breakpoint of the user's that stopped the
        program where the call ended ("" if none)."""
        mem = self.session.memory(hit.map_addr, 8)
        dec = self._decoder(hit.map_type, mem)
        call = self.stops.call(hit, may_panic=dec.keys.kt.kind not in HASH_CANNOT_PANIC)
        n = self.opts.max_events
        last = n is not None and self.summary.events + 1 >= n
        arming = self.stops.arming()  # then the program stays stopped after the call
        r = self.recorder.record(hit, call, dec, mem, last_event=last or arming)
        self.summary.count(r.op, r.before.count, r.after.count)
        if self.summary.first is None:
            self.summary.first = r.before
        self.summary.last = r.after
        if r.header_after != hit.map_addr:
            self.watched.header = r.header_after
        ev = DeleteEvent(
            seq=self.summary.events,
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
        )
        self.on_event(ev)
        if arming and not last and not r.end.users_stop:
            self._arm(hit.map_type)
        return ev, r.end.users_stop

    def _arm(self, map_type: int) -> None:
        said = self.stops.arm(map_type)
        if said:
            data: dict[str, object] = {"mode": self.stops.mode_in_use}
            if self.stops.fallback:
                data["fallback"] = True
            self.on_note(Note("mode", said, data))

    def _finish(self, exit_status: int) -> None:
        """At exit: how the program ended if not with status 0; why no delete was seen."""
        if self.summary.events:
            if exit_status:
                self.on_note(
                    Note(
                        "exited",
                        f"the program {exit_words(exit_status)}",
                        {"exit_status": exit_status},
                    )
                )
            return
        why = self.resolver.failure(self.watched.known)
        if why is not None:
            raise MapResolutionError(why)
        where = f" from {self.opts.shown}" if self._calls_seen else ""
        raise NoDeletesError(f"the program {exit_words(exit_status)} before any delete{where}")
