"""`dlvsnap regress`: watch the fixture programs on every installed Go release and compare
what the runtime did with golden files committed per release.

A golden (goldens/<release>/<fixture>.txt) has one line per watched delete or clear: the
operation, the key, whether it was present, the count before and after, and the runtime
rules (dlvsnap.rules) that applied and held. Slot positions and hash bytes depend on the
random hash seed and are left out, so a golden is the same on every run of a release; a
changed rule, a rule that stopped holding, or a layout that no longer decodes shows up as
a readable line-level difference.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dlvsnap.build import build_cached
from dlvsnap.errors import DlvsnapError
from dlvsnap.goversion import Release, release_of
from dlvsnap.model import DeleteEvent, key_to_text
from dlvsnap.rules import RULES, check
from dlvsnap.session import Session
from dlvsnap.toolchain import Variant, pick_dlv
from dlvsnap.watch import MapWatch, WatchOptions


@dataclass(frozen=True)
class Fixture:
    name: str
    expr: str
    min_go: Release = (1, 0)


def load_fixtures(fixtures_dir: Path) -> list[Fixture]:
    with (fixtures_dir / "regress.toml").open("rb") as f:
        data = tomllib.load(f)
    out = []
    for name, spec in data.items():
        out.append(Fixture(name, str(spec["map"]), release_of(str(spec.get("min_go", "1.0")))))
    return out


def event_line(ev: DeleteEvent) -> str:
    d = ev.diff
    if ev.op == "clear":
        head = f"#{ev.seq} clear"
    else:
        present = "present" if d.count_after < d.count_before else "absent"
        key = key_to_text(ev.key) if ev.key_decoded else "?"
        head = f"#{ev.seq} delete key={key} {present}"
    count = "count" if ev.after.impl == "classic" else "used"
    rules = " ".join(str(c) for c in check(ev))
    return f"{head} {count} {d.count_before}->{d.count_after} | {rules}"


def render_golden(fx: Fixture, v: Variant, impl: str, layout: str, lines: list[str]) -> str:
    used = sorted({r.lstrip("!").split("(")[0] for ln in lines for r in ln.split(" | ")[1].split()})
    head = [
        f"# dlvsnap regress golden: fixture {fx.name} (--map {fx.expr}), {v.id}, "
        f"{impl} maps, layout {layout}",
        "# One line per watched delete/clear: key, present or absent, count before->after, then",
        "# the runtime rules that applied (a '!' marks a rule that did not hold). Rules:",
        *(f"#   {r}: {RULES[r]}" for r in used),
    ]
    return "\n".join(head + lines) + "\n"


@dataclass
class Result:
    variant: Variant
    fixture: Fixture
    status: str  # ok | drift | error | new | updated
    detail: str = ""
    text: str = ""


@dataclass
class Regress:
    fixtures_dir: Path
    goldens_dir: Path
    update: bool = False
    mode: str = "watchpoint"  # how the watched map's calls stop the program (WatchOptions)
    progress: Callable[[str], None] = field(default=lambda s: None)

    def run_one(self, v: Variant, fx: Fixture) -> Result:
        go = v.go_path()
        if go is None or not go.exists():
            return Result(v, fx, "error", f"Go {v.go} not installed (scripts/toolchains)")
        dlv = pick_dlv(v.go)
        if dlv is None:
            return Result(v, fx, "error", f"no installed Delve accepts Go {v.go}")
        try:
            prog = build_cached(self.fixtures_dir, fx.name, str(go), v.env())
            lines: list[str] = []
            with Session.launch(dlv, prog, [], sink=None) as s:
                impl = s.target.map_impl
                # whole snapshots: a rule such as "an absent key changes nothing" is about
                # the whole map, not the groups a probe reads
                opts = WatchOptions(expr=fx.expr, full=True, mode=self.mode)
                w = MapWatch(s, opts, lambda ev: lines.append(event_line(ev)))
                layout = w.layout.name
                w.run()
        except DlvsnapError as e:
            return Result(v, fx, "error", str(e))
        text = render_golden(fx, v, impl, layout, lines)
        return self._compare(v, fx, text)

    def _compare(self, v: Variant, fx: Fixture, text: str) -> Result:
        path = self.goldens_dir / v.id / f"{fx.name}.txt"
        if self.update:
            old = path.read_text() if path.exists() else None
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            status = "new" if old is None else ("ok" if old == text else "updated")
            return Result(v, fx, status, text=text)
        if not path.exists():
            return Result(v, fx, "error", f"no golden {path} (run with --update)", text)
        want = path.read_text()
        if want == text:
            return Result(v, fx, "ok", text=text)
        return Result(v, fx, "drift", first_difference(want, text), text)

    def run(self, variants: list[Variant]) -> list[Result]:
        results = []
        for v in variants:
            for fx in load_fixtures(self.fixtures_dir):
                if v.release < fx.min_go:
                    continue
                self.progress(f"{v.id} {fx.name}")
                results.append(self.run_one(v, fx))
        return results


def first_difference(want: str, got: str) -> str:
    """The first differing event, as golden vs now."""
    for line in difflib.unified_diff(want.splitlines(), got.splitlines(), lineterm="", n=0):
        if line.startswith("-#") and not line.startswith("--- "):
            minus = line[1:]
            break
    else:
        return "header lines differ"
    plus = next(
        (
            ln[1:]
            for ln in difflib.unified_diff(want.splitlines(), got.splitlines(), lineterm="", n=0)
            if ln.startswith("+#") and not ln.startswith("+++")
        ),
        "(missing)",
    )
    return f"golden: {minus}\n  now:    {plus}"
