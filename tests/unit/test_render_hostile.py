"""The text views on what a program or a file controls: keys (from a real saved snapshot of
fixtures/hostilekeys: terminal escapes, bidi controls, C1 controls, invisible characters),
source file and function names, reflect entry points, warnings, notes and titles. Nothing
reaches the terminal raw but the colours the renderer adds itself."""

from __future__ import annotations

import io
import re
import unicodedata

import pytest

from dlvsnap import snapfile
from dlvsnap.diff import diff
from dlvsnap.model import DeleteEvent, Location, key_to_text
from dlvsnap.render.text import TextRenderer, diff_text, event_text, snapshot_text
from tests import hostile

EVIL = "\x1b[7mrev\x1b]0;title\x07\u202etxt\u2066\x9b2J\u200b\u3164"
# the only escape sequences click.style writes: reset, bold, dim, normal, colours
OURS = re.compile(r"\x1b\[(0|1|2|22|3[0-7]|9[0-7])m")


def raw_controls(text: str, colour: bool) -> list[str]:
    if colour:
        text = OURS.sub("", text)
    return sorted(
        {
            f"U+{ord(c):04X}"
            for c in text
            if c != "\n"
            and (unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") or c in "\u3164\u034f")
        }
    )


def _snapshot():  # type: ignore[no-untyped-def]
    return snapfile.load(hostile.DATA / "swiss-strings.snap.json").snapshot


def _event(key: str = EVIL) -> DeleteEvent:
    snap = _snapshot()
    return DeleteEvent(
        seq=1,
        op="delete",
        entry="runtime.mapdelete_faststr" + EVIL,
        via="reflect.mapdelete" + EVIL,
        goroutine=1,
        location=Location("main." + EVIL, f"/src/{EVIL}.go", 7),
        key=key,
        key_decoded=True,
        before=snap,
        after=snap,
        diff=diff(snap, snap),
        warnings=("warning " + EVIL,),
    )


@pytest.mark.parametrize("colour", [False, True], ids=["plain", "colour"])
def test_watch_view_shows_nothing_raw(colour: bool) -> None:
    out = io.StringIO()
    r = TextRenderer(out, colour=colour)
    r.start(f"watching m{EVIL} in prog: go1.26.8")
    r.note("the header moved " + EVIL)
    r.event(_event(), live_keys=True)
    text = out.getvalue()
    assert raw_controls(text, colour) == []
    assert r"main.\x1b[7mrev\x1b]0;title\x07\u202etxt\u2066\x9b2J\u200b\u3164 " in text
    assert r"\x1b[7mrev\x1b]0;title\x07\u202etxt\u2066\x9b2J\u200b\u3164.go:7" in text
    # every key of the real map, escaped: terminal escapes, bidi, C1, zero-width
    for k in ('"\\x1b[31mred\\x1b[0m\\x1b]0;title\\a"', r'"abc\u202edcba\u2066x\u2069"'):
        assert k in text
    assert r'"c1\u0085\u009b31m"' in text and r'"zero\u200bwidth\ufeff"' in text
    assert (OURS.search(text) is not None) == colour


@pytest.mark.parametrize("colour", [False, True], ids=["plain", "colour"])
def test_snap_and_diff_views_show_nothing_raw(colour: bool) -> None:
    snap = _snapshot()
    out = io.StringIO()
    r = TextRenderer(out, colour=colour)
    r.snapshot_view(f"{EVIL} (map[string]int{EVIL}) at 0x1", snap, limit=0)
    r.diff_view(f"{EVIL}: a.json ({EVIL}) -> b.json", snap, snap, diff(snap, snap))
    text = out.getvalue()
    assert raw_controls(text, colour) == []
    assert r'"abc\u202edcba\u2066x\u2069"' in text  # the layout view's cells hold the keys


def test_str_of_the_api_objects_shows_nothing_raw() -> None:
    snap = _snapshot()
    for text in (snapshot_text(snap, limit=0), event_text(_event()), diff_text(diff(snap, snap))):
        assert raw_controls(text, False) == []


def test_str_of_the_model_objects_is_the_text_view() -> None:
    """The model imports no renderer: dlvsnap.render.text (imported above, as the API and
    the CLI import it) installs itself as their str()."""
    snap, ev = _snapshot(), _event()
    d = diff(snap, snap)
    assert (str(snap), str(ev), str(d)) == (snapshot_text(snap), event_text(ev), diff_text(d))


def test_key_to_text_escapes_what_repr_lets_through() -> None:
    """Go's quoting (%#v) escapes what str.isprintable() refuses; the default-ignorable
    characters it accepts (Hangul fillers, combining grapheme joiner, variation selectors)
    are escaped too."""
    assert key_to_text("a\u3164b\u034fc\ufe0f") == r'"a\u3164b\u034fc\ufe0f"'
    assert key_to_text("\x1b[2J") == r'"\x1b[2J"'
    assert key_to_text("x" * 50) == '"' + "x" * 40 + '"…'
    assert key_to_text('say "hi"\\') == r'"say \"hi\"\\"'  # as strconv.Quote


def test_a_forgotten_place_is_still_escaped_on_the_way_out() -> None:
    """A control character that reached a line unescaped (a future field) is escaped by the
    renderer's last step; only its own colour sequences pass."""
    for colour in (False, True):
        out = io.StringIO()
        r = TextRenderer(out, colour=colour)
        r._write(f"{r._c('ok', fg='green')} raw \x1b[7m\u202e\n")
        assert raw_controls(out.getvalue(), colour) == []
        assert r"raw \x1b[7m\u202e" in out.getvalue()


@pytest.mark.parametrize("colour", [False, True])
def test_the_census_table_shows_keys_in_paths_inertly(colour: bool) -> None:
    """A map's path holds the program's keys (`main.m["…"]`) and its type's name: neither
    reaches the terminal raw."""
    from dlvsnap.census.result import Census, MapEntry, RootStats
    from dlvsnap.census.walk import Stats
    from dlvsnap.phases import Figures

    entry = MapEntry(
        f'main.m["{EVIL}"].cache\nfake row',
        3,
        0xC000010000,
        f"map[string]main.{EVIL}",
        "swiss",
        Figures(1, 8, 0, 256, 16, 0xC000010000),
        None,
    )
    c = Census([entry], Stats(), RootStats())
    out = io.StringIO()
    TextRenderer(out, colour=colour).census_table(f"maps in {EVIL}", c, [entry], [(entry, EVIL)])
    text = out.getvalue()
    assert raw_controls(text, colour) == []
    assert "fake row" in text and not any(ln.startswith("fake row") for ln in text.splitlines())
