"""Maps of code nobody here wrote (fixtures/realcode: a TTL cache and a generic LRU cache
from the Go module proxy, pinned by its go.sum, and url.Values, http.Header), named the way
a user names them: receiver fields (`c.items`, `s.byID`), outer frames (`--frame`, `--in`),
index expressions, embedded fields, package variables; and on optimised builds (plain
`go build`) by `--site`. Every delete is checked against the program's own view of the map
(package oracle) with the invariants of tests/live/invariants.py, while the program also
deletes from maps nobody watches."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import dlvsnap
from dlvsnap.build import DEBUG_GCFLAGS, build_cached
from dlvsnap.toolchain import Variant
from tests.live.invariants import check_deletes
from tests.support import FIXTURES, dlv_for, go_for, parse_oracle, run_dlvsnap, run_watch

pytestmark = pytest.mark.live

MODULE = FIXTURES / "realcode"
SOURCE = MODULE / "realprog" / "main.go"
SWISS = Variant("1.26")
CLASSIC = Variant("1.22.10")


def build(v: Variant, *, optimized: bool) -> Path:
    dlv_for(v)  # fails (CI) or skips (locally) when no installed Delve accepts v.go
    gcflags = "" if optimized else DEBUG_GCFLAGS
    return build_cached(MODULE, "realprog", go_for(v), v.env(), gcflags=gcflags)


def site_line(marker: str) -> str:
    """FILE:LINE of the line of realprog/main.go that carries ``// SITE:<marker>``, as a
    user types it (Delve matches the end of the file's path)."""
    for n, line in enumerate(SOURCE.read_text().splitlines(), 1):
        if f"// SITE:{marker}" in line:
            return f"realprog/main.go:{n}"
    raise AssertionError(marker)


# scenario, how its map is named, the oracle's key encoding
DEBUG_CASES = [
    ("ttl", ["--map", "c.items"], "string"),
    ("lru", ["--map", "c.items", "--in", "simplelru.(*LRU[K,V]).removeElement"], "int"),
    ("store", ["--map", "s.byID"], "int"),
    ("store", ["--map", "(*s).byID"], "int"),
    ("registry", ["--map", "main.Registry"], "string"),
    ("query", ["--map", "q", "--frame", "1"], "string"),
    ("header", ["--map", "h", "--in", "main.main"], "string"),
    ("set", ["--map", "g.m", "--in", "main.main"], "int"),
    ("set", ["--map", "g.m", "--frame", "1"], "int"),
    ("shards", ["--map", "shards[3]"], "int"),
    ("outer", ["--map", 'outer["b"]'], "int"),
    ("embedded", ["--map", "w.counts"], "int"),
    ("embedded", ["--map", "w.base.inner.counts"], "int"),
]

OPTIMISED_CASES = [
    ("ttl", ["--site", "github.com/patrickmn/go-cache.(*cache).delete"], "string"),
    ("ttl", ["--map", "c.items", "--site", "(*cache).delete"], "string"),
    ("lru", ["--site", "simplelru.(*LRU).removeElement"], "int"),
    ("store", ["--site", "SITE:drop"], "int"),
    ("store", ["--site", "main.(*store).drop"], "int"),
    ("registry", ["--map", "main.Registry"], "string"),
    ("query", ["--site", "net/url.Values.Del"], "string"),
    ("set", ["--site", "main.(*Set[K]).Del"], "int"),
]


def _args(args: list[str]) -> list[str]:
    return [site_line(a.removeprefix("SITE:")) if a.startswith("SITE:") else a for a in args]


def _watch(binary: Path, scenario: str, args: list[str], kind: str, tmp: Path) -> None:
    expr, extra = ("", _args(args))
    if extra[0] == "--map":
        expr, extra = extra[1], extra[2:]
    run = run_watch(binary, expr, *extra, tmp=tmp, program_args=(scenario,))
    assert run.returncode == 0, run.stderr
    assert f"realprog: {scenario} done" in run.target_output
    oracle = parse_oracle(run.target_output)
    check_deletes(run, oracle, kind)  # every key decoded, every delete's slots as the runtime
    assert all(n["kind"] == "moved" for n in run.notes()), run.notes()


@pytest.mark.parametrize(("scenario", "args", "kind"), DEBUG_CASES, ids=str)
def test_natural_expressions_on_a_debug_build(
    scenario: str, args: list[str], kind: str, tmp_path: Path
) -> None:
    _watch(build(SWISS, optimized=False), scenario, args, kind, tmp_path)


@pytest.mark.parametrize(("scenario", "args", "kind"), OPTIMISED_CASES, ids=str)
def test_site_on_an_optimised_build(
    scenario: str, args: list[str], kind: str, tmp_path: Path
) -> None:
    _watch(build(SWISS, optimized=True), scenario, args, kind, tmp_path)


@pytest.mark.parametrize(
    ("scenario", "args", "kind", "optimized"),
    [
        ("ttl", ["--map", "c.items"], "string", False),
        ("set", ["--map", "g.m", "--frame", "1"], "int", False),
        ("lru", ["--site", "simplelru.(*LRU).removeElement"], "int", True),
        ("store", ["--site", "SITE:drop"], "int", True),
    ],
    ids=str,
)
def test_classic_maps(
    scenario: str, args: list[str], kind: str, optimized: bool, tmp_path: Path
) -> None:
    _watch(build(CLASSIC, optimized=optimized), scenario, args, kind, tmp_path)


def _fails(binary: Path, *args: str) -> tuple[int, str]:
    out = ("--target-output", "/dev/null")
    p = run_dlvsnap("watch", str(binary), *args, "--json", *out, "--", "store")
    assert p.stdout.count("\n") <= 1, p.stdout  # at most the start record, no event
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return p.returncode, lines[0]


def test_a_local_gone_from_an_optimised_build_says_so_and_what_to_do() -> None:
    code, msg = _fails(build(SWISS, optimized=True), "--map", "s.byID")
    assert code == 3
    assert msg.startswith("dlvsnap: unknown variable: s.byID did not evaluate"), msg
    assert "no variable s in " in msg and "main.(*store).drop" in msg, msg
    assert "optimised" in msg and "--site" in msg and "-gcflags=all='-N -l'" in msg, msg


def test_delves_reason_is_kept() -> None:
    code, msg = _fails(build(SWISS, optimized=False), "--map", "c.itms")
    assert code == 3
    assert "c has no member itms in " in msg, msg
    assert "optimised" not in msg, msg  # a debug build: no advice about optimisation


def test_map_and_site_must_name_the_same_map() -> None:
    site = site_line("drop")
    code, msg = _fails(
        build(SWISS, optimized=False), "--map", "q", "--in", "main.main", "--site", site
    )
    assert code == 3
    assert re.search(r"--map q and --site \S+ name different maps", msg), msg


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--site", "nosuch.f"], "--site nosuch.f: the binary has no function or line of"),
        (["--site", "lru.go:173"], "ambiguous"),  # two lru.go in golang-lru: Delve's words
        (["--map", "m", "--in", "nosuch.f"], "--in nosuch.f: the binary has no function"),
        (["--site", "main.go:99999"], "could not find statement"),
    ],
)
def test_places_the_binary_lacks_are_refused_before_the_run(args: list[str], words: str) -> None:
    code, msg = _fails(build(SWISS, optimized=False), *args)
    assert code == 2
    assert words in msg, msg


def test_the_python_api_takes_a_site_and_an_outer_frame() -> None:
    with dlvsnap.launch(build(SWISS, optimized=True), args=["store"]) as prog:
        events = list(prog.watch(site="main.(*store).drop", max_events=3))
    assert [e.key for e in events] == [0, 7, 14]  # the program's first three deleted ids
    assert all(e.location.function == "main.(*store).drop" for e in events)
    with dlvsnap.launch(build(SWISS, optimized=False), args=["set"]) as prog:
        with pytest.raises(ValueError, match="needs a map"):
            prog.watch()
        events = list(prog.watch("g.m", in_func="main.main", max_events=2))
    assert [e.key for e in events] == [0, 7]
    assert events[0].location.function == "main.(*Set[go.shape.int]).Del"
