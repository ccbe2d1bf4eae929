"""Which expressions dlvsnap checks as package variables before the program runs."""

from __future__ import annotations

import pytest

from dlvsnap.watch.watched import package_root as _package_root


@pytest.mark.parametrize(
    ("expr", "root"),
    [
        ("main.cache", ("main", "main.cache")),
        ("main.srv.byID", ("main", "main.srv")),
        ('"example.com/pkg".Var[1]', ("example.com/pkg", "example.com/pkg.Var")),
        ("*main.p", ("main", "main.p")),
        ("c.items", ("c", "c.items")),
        ("m", None),
        ("(*c).items", None),
        ("m[1]", None),
    ],
)
def test_package_root(expr: str, root: tuple[str, str] | None) -> None:
    assert _package_root(expr) == root


# -- where.py: which frame evaluates EXPR, which frame a --site names ---------------------------

from dlvsnap.model import Location  # noqa: E402
from dlvsnap.watch.where import FrameChoice, Site, names_function, plain_name  # noqa: E402

LRU = "github.com/hashicorp/golang-lru/v2/simplelru.(*LRU[go.shape.int,go.shape.string])"
# a delete inside an LRU cache, inlined calls included (Delve lists them as frames)
STACK = (
    Location("runtime.mapdelete_fast64", "/go/src/internal/runtime/maps/runtime_fast64.go", 505),
    Location(f"{LRU}.removeElement", "/mod/simplelru/lru.go", 173),
    Location(f"{LRU}.Remove", "/mod/simplelru/lru.go", 100),
    Location("main.main", "/src/realprog/main.go", 45),
    Location("runtime.main", "/go/src/runtime/proc.go", 290),
)


@pytest.mark.parametrize(
    ("name", "plain"),
    [
        (f"{LRU}.Remove", "github.com/hashicorp/golang-lru/v2/simplelru.(*LRU).Remove"),
        ("main.(*Set[K]).Del", "main.(*Set).Del"),
        ("p.(*T[go.shape.map[string]int]).f", "p.(*T).f"),  # nested brackets
        ("main.main", "main.main"),
    ],
)
def test_plain_name_drops_type_arguments(name: str, plain: str) -> None:
    assert plain_name(name) == plain


@pytest.mark.parametrize(
    ("spec", "matches"),
    [
        (f"{LRU}.Remove", True),
        ("simplelru.(*LRU).Remove", True),
        ("simplelru.(*LRU[K, V]).Remove", True),
        ("(*LRU).Remove", True),
        ("Remove", True),
        ("LRU).Remove", False),  # not at a package or name boundary
        ("emove", False),
        ("lru.(*LRU).Remove", False),  # v2/simplelru, not v2
    ],
)
def test_names_function(spec: str, matches: bool) -> None:
    assert names_function(spec, f"{LRU}.Remove") is matches


def test_the_default_frame_is_the_callers() -> None:
    assert FrameChoice().eval_frame(STACK, 1) == 1
    assert not FrameChoice().needs_stack


def test_frame_counts_out_from_the_caller() -> None:
    assert FrameChoice(frame=2).eval_frame(STACK, 1) == 3
    assert FrameChoice(frame=2).needs_stack


def test_in_matches_any_frame_from_the_caller_out() -> None:
    assert FrameChoice(in_func="main.main").eval_frame(STACK, 1) == 3
    assert FrameChoice(in_func="(*LRU).Remove").eval_frame(STACK, 1) == 2
    assert FrameChoice(in_func="main.other").eval_frame(STACK, 1) is None
    # the runtime's own frames are not the caller's: never matched
    assert FrameChoice(in_func="runtime.mapdelete_fast64").eval_frame(STACK, 1) is None


def test_a_line_site_matches_the_resolved_file_and_line() -> None:
    site = Site("main.go:45", file="/src/realprog/main.go", line=45)
    choice = FrameChoice(site=site)
    assert choice.site_frame(STACK, 1) == 3
    assert choice.eval_frame(STACK, 1) == 3  # EXPR evaluates where the site is
    other = FrameChoice(site=Site("main.go:46", file="/src/realprog/main.go", line=46))
    assert other.site_frame(STACK, 1) is None
    assert other.eval_frame(STACK, 1) is None


def test_a_function_site_and_an_explicit_frame() -> None:
    site = Site.of("simplelru.(*LRU).removeElement")
    assert site.function and not site.file
    assert FrameChoice(site=site).site_frame(STACK, 1) == 1
    assert FrameChoice(site=site, in_func="main.main").eval_frame(STACK, 1) == 3


@pytest.mark.parametrize(
    ("spec", "is_line"),
    [
        ("main.go:18", True),
        ("/abs/path/cache.go:921", True),
        ("main.(*store).drop", False),
        ("main.main", False),
        ("main.(*T).f:3", True),  # Delve's FUNC:LINE, resolved to its file and line
    ],
)
def test_site_kinds(spec: str, is_line: bool) -> None:
    assert Site.is_line(spec) is is_line
