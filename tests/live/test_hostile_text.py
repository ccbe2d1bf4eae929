"""What a debugged program controls, through the real CLI and the real Delve: its keys (terminal
escapes, bidi controls, C1 controls, invisible characters, invalid UTF-8) and the name of
its source file (Go builds `m\u202eog.niam\x1b[7m.go`). `watch` (in colour too), `snap` and
`diff` print them escaped; `watch --json` keeps them exact (JSON escapes) and the report
shows them escaped."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dlvsnap.render import html
from tests.support import FIXTURES, dlv_binary, go_toolchain, run_dlvsnap, run_watch

pytestmark = pytest.mark.live

EVIL_FILE = "m\u202eog.niam\x1b[7m.go"
# the only escape sequences click.style writes: reset, bold, dim, normal, colours
OURS = re.compile(r"\x1b\[(0|1|2|22|3[0-7]|9[0-7])m")
RAW = re.compile(
    r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fixtures/hostilekeys as a package of its own whose one file has a hostile name."""
    go_toolchain()
    d = tmp_path_factory.mktemp("evil") / "evilpkg"
    d.mkdir()
    shutil.copy(FIXTURES / "hostilekeys" / "main.go", d / EVIL_FILE)
    (d / "go.mod").write_text("module evilpkg\n\ngo 1.19\n")
    return d


def _dlvsnap(*args: str) -> subprocess.CompletedProcess[str]:
    return run_dlvsnap(*args, timeout=300, env={"NO_COLOR": ""})


def _raw(text: str) -> list[str]:
    return sorted({f"U+{ord(c):04X}" for c in RAW.findall(OURS.sub("", text))})


@pytest.mark.parametrize("colour", ["--color", "--no-color"])
def test_watch_text_view_shows_the_programs_strings_escaped(program: Path, colour: str) -> None:
    dlv_binary()
    p = _dlvsnap(
        "watch", str(program), "--map", "main.Strings", "--live-keys", colour,
        "--target-output", os.devnull,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert _raw(p.stdout) == [] and _raw(p.stderr) == []
    assert (OURS.search(p.stdout) is not None) == (colour == "--color")
    out = OURS.sub("", p.stdout)
    assert r"main.main m\u202eog.niam\x1b[7m.go:" in out  # the file name, escaped
    for key in (
        r'"\x1b[31mred\x1b[0m\x1b]0;title\a"',  # as strconv.Quote escapes
        r'"abc\u202edcba\u2066x\u2069"',
        r'"c1\u0085\u009b31m"',
        r'"zero\u200bwidth\ufeff"',
        r'"line\nbreak\r\ttab"',
        "0xfffe206e6f74205554462d38",  # not UTF-8: its bytes
    ):
        assert f"key={key}" in out, key


def test_snap_and_diff_show_the_programs_strings_escaped(program: Path, tmp_path: Path) -> None:
    """The layout view shows every full slot's key; the saved files' stop location is the
    hostile file; `diff` of the stops before and after the deletes shows the keys that went."""
    dlv_binary()
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    p = _dlvsnap(
        "snap", str(program), "--at", "main.checkpoint", "--map", "main.Strings",
        "--limit", "0", "--save", str(a), "--target-output", os.devnull,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert _raw(p.stdout) == [] and r'"abc\u202edcba\u2066x\u2069"' in p.stdout
    # the second checkpoint call, after the deletes, by its line in the hostile file
    line = (FIXTURES / "hostilekeys" / "main.go").read_text().splitlines().index(
        "\tcheckpoint(1)"
    ) + 1
    # both stops in one process (diff refuses snapshots of two): m.1.json, m.2.json
    p2 = _dlvsnap(
        "snap", str(program), "--at", "main.checkpoint", "--at", f"{EVIL_FILE}:{line}",
        "--map", "main.Strings", "--save", str(tmp_path / "m.json"), "--target-output",
        os.devnull,
    )  # fmt: skip
    assert p2.returncode == 0, p2.stderr
    assert _raw(p2.stdout) == []  # the phase table: the hostile file's name as text
    a, b = tmp_path / "m.1.json", tmp_path / "m.2.json"
    d = _dlvsnap("diff", str(a), str(b))
    assert d.returncode == 0, d.stderr
    assert _raw(d.stdout) == []
    assert rf"m\u202eog.niam\x1b[7m.go:{line}" in d.stdout
    assert r'key "\x1b[31mred\x1b[0m\x1b]0;title\a"' in d.stdout


def test_json_keeps_them_exact_and_the_report_escapes_them(program: Path, tmp_path: Path) -> None:
    dlv_binary()
    run = run_watch(program, "main.Strings", tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    assert _raw(run.stdout) == []  # JSON escapes every control character
    ops = run.ops
    assert {ev["file"].rsplit("/", 1)[-1] for ev in ops} == {EVIL_FILE}
    assert "\x1b[31mred\x1b[0m\x1b]0;title\x07" in [ev["key"] for ev in ops]
    events = tmp_path / "events.jsonl"
    events.write_text(run.stdout)
    page = html.render(html.read_events(events), str(events))
    assert _raw(page.replace("\n", "")) == []
    data = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    assert data is not None
    locs = json.loads(data[1])["locs"]
    assert locs and all(r"m\u202eog.niam\x1b[7m.go:" in loc for loc in locs), locs
