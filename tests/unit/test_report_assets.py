"""The report page's template, CSS and JavaScript are package files (dlvsnap/render/report):
they agree with the schema's state characters, the template has exactly the slots the
renderer fills, and the wheel carries them (tests/unit/test_packaging.py)."""

from __future__ import annotations

import re
from importlib import resources

from dlvsnap.model import STATE_CHARS, UNKNOWN_CHAR
from dlvsnap.render import html

NAMES = [*STATE_CHARS, "unknown"]


def _asset(name: str) -> str:
    return resources.files("dlvsnap.render").joinpath("report", name).read_text("utf-8")


def test_the_javascript_knows_every_state_by_its_character() -> None:
    js = _asset("report.js")
    ch = re.search(r'const CH = "([^"]*)";', js)
    names = re.search(r"const NAMES = \[([^\]]*)\];", js)
    assert ch and names
    assert ch[1] == "".join(STATE_CHARS.values()) + UNKNOWN_CHAR
    assert re.findall(r'"(\w+)"', names[1]) == NAMES


def test_the_css_colours_every_state() -> None:
    css = _asset("report.css")
    for name in NAMES:
        assert re.search(rf"--{name}:#[0-9a-f]{{6}}[;}}]", css), name
        assert f"[data-state={name}]{{background:var(--{name})}}" in css, name


def test_the_template_has_the_slots_the_renderer_fills_and_loads_nothing() -> None:
    page = _asset("page.html")
    assert sorted(set(re.findall(r"@([A-Z]+)@", page))) == ["CHART", "CSS", "DATA", "JS", "TITLE"]
    assert "default-src 'none'" in page
    assert not re.search(r"""src\s*=""", page)
    # links go to the page's own sections only
    assert set(re.findall(r"""href\s*=\s*("[^"]*"|\S+)""", page)) == {
        '"#grid-section"',
        '"#timeline"',
        '"#memory"',
    }
    rendered = html.render([*_one_event_run()], "run.jsonl")
    assert "@CSS@" not in rendered and _asset("report.js").strip() in rendered


def _one_event_run() -> list[dict[str, object]]:
    change = {"slot": "g0/s1", "before_state": "full", "after_state": "empty", "key": 7}
    return [
        {"v": 1, "event": "start", "map": "m", "map_impl": "swiss"},
        {"v": 1, "event": "delete", "seq": 1, "key": 7, "key_present": True, "changes": [change]},
    ]
