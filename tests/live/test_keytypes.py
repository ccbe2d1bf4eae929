"""Keys of every type (issue 12): fixtures/keytypes prints each key it deletes (and each it
inserts into `structs`) as Go's own fmt.Sprintf("%#v") prints it inside a value; dlvsnap's
decoded key must print the same, in the text view and, read back from JSON, in `--json`,
for the deleted key and for the slot it held, on swiss and classic maps."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dlvsnap.gofmt import float_text
from tests.support import Variant, build_fixture, dlv_for, run_watch, variants

pytestmark = pytest.mark.live

VARIANTS = variants()
# map -> what its keys are
MAPS = {
    "structs": "struct with a string field (runtime.mapdelete)",
    "ptrs": "pointer (runtime.mapdelete_fast64)",
    "arrays": "[2]int",
    "long": "[20]int16: abbreviated in text",
    "ifaces": "interface {}: string, struct, float64, int, pointer, nil, bool, uint8, array",
    "shapes": "a non-empty interface: struct and pointer",
    "nests": "struct of a struct, an array of strings, a struct with an array, uint16, float32",
    "names": "struct{s string}: hashed as a string (runtime.mapdelete_faststr)",
    "points": "struct{x, y int32}: 8 bytes of memory (runtime.mapdelete_fast64)",
}
WATCH = (sys.executable, "-m", "dlvsnap", "watch")
KEY_LINE = re.compile(r"^DLVSNAP-KEY map=(\w+) op=(\w+) key=(.*)$")


def _program_keys(output: str, name: str, op: str = "delete") -> list[str]:
    out = []
    for line in output.splitlines():
        m = KEY_LINE.match(line)
        if m and m[1] == name and m[2] == op:
            out.append(m[3])
    return out


def _go(k: Any) -> str:
    """A key of `--json` (docs/json-schema.md, Keys) as %#v prints it, integers in decimal
    (JSON does not say which are unsigned: see _decimal)."""
    if isinstance(k, bool):
        return "true" if k else "false"
    if isinstance(k, int | float | str):
        # the fixture's strings are ASCII: Go quotes them as JSON does
        return float_text(k) if isinstance(k, float) else json.dumps(k)
    assert isinstance(k, dict), k
    return _tagged(k)


def _tagged(k: dict[str, Any]) -> str:
    if "struct" in k:
        return k["struct"] + "{" + ", ".join(f"{n}:{_go(v)}" for n, v in k["fields"]) + "}"
    if "array" in k:
        assert len(k["elems"]) == k["len"], k  # the fixture's arrays are short
        return k["array"] + "{" + ", ".join(_go(v) for v in k["elems"]) + "}"
    if "pointer" in k:
        return f"({k['pointer']})({hex(k['addr'])})"
    assert "interface" in k, f"not a key of schema 2: {k}"
    return f"{k['interface']}(nil)" if k["type"] is None else _go(k["value"])


def _decimal(text: str) -> str:
    """Hex integers (unsigned ones and pointers, as %#v writes them) in decimal."""
    return re.sub(r"\b0x[0-9a-f]+\b", lambda m: str(int(m[0], 16)), text)


def _shown(text: str, want: str) -> bool:
    """The text view's key is the program's, or its start where the view cut it (``…``)."""
    if "…" not in text:
        return text == want
    head = text[: text.index("…")].removesuffix(", ")
    return want.startswith(head)


def _family_variants() -> list[Variant]:
    """One release of each map family: the default toolchain's swiss and the first classic."""
    swiss = [v for v in VARIANTS if v.impl == "swiss" and v.id == "go1.26"]
    classic = [v for v in VARIANTS if v.impl == "classic"][:1]
    return swiss + classic


@pytest.mark.parametrize("v", VARIANTS, ids=lambda v: v.id)
def test_json_keys_are_the_programs_own_percent_v(tmp_path: Path, v: Variant) -> None:
    dlv_for(v)
    exe = build_fixture("keytypes", variant=v)
    for name, what in MAPS.items():
        run = run_watch(exe, name, tmp=tmp_path)
        assert run.returncode == 0, (name, run.stderr)
        want = _program_keys(run.target_output, name)
        deletes = run.of("delete")
        assert len(deletes) == len(want) > 0, (name, what)
        for ev, w in zip(deletes, want, strict=True):
            assert _decimal(_go(ev["key"])) == _decimal(w), (name, what, ev["key"], w)
            held = [c for c in ev["changes"] if c["before_state"] == "full"]
            assert [c["key"] for c in held] == [ev["key"]], (name, ev["changes"])


@pytest.mark.parametrize("v", _family_variants(), ids=lambda v: v.id)
def test_text_keys_are_the_programs_own_percent_v(tmp_path: Path, v: Variant) -> None:
    dlv_for(v)
    exe = build_fixture("keytypes", variant=v)
    out = tmp_path / "target.txt"
    for name in MAPS:
        p = subprocess.run(
            [*WATCH, str(exe), "--map", name, "--no-color", "--target-output", str(out)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert p.returncode == 0, (name, p.stderr)
        want = _program_keys(out.read_text(), name)
        heads = re.findall(r"^#\d+ delete key=(.*?)  \S+ \S+:\d+  \(", p.stdout, re.M)
        slots = re.findall(r"^   .* full\(.*\)  ->  .*  key (.*)$", p.stdout, re.M)
        assert len(heads) == len(slots) == len(want) > 0, (name, p.stdout)
        for head, slot, w in zip(heads, slots, want, strict=True):
            assert head == slot, (name, p.stdout)
            assert _shown(head, w), (name, head, w)


@pytest.mark.parametrize("v", _family_variants(), ids=lambda v: v.id)
def test_inserted_slots_show_their_key(tmp_path: Path, v: Variant) -> None:
    """`--ops assign`: the slot an insert fills carries the key the program inserted."""
    dlv_for(v)
    run = run_watch(
        build_fixture("keytypes", variant=v), "structs", "--ops", "assign", tmp=tmp_path
    )
    assert run.returncode == 0, run.stderr
    want = _program_keys(run.target_output, "structs", "assign")
    assigns = run.of("assign")
    assert len(assigns) == len(want) == 13
    for ev, w in zip(assigns, want, strict=True):
        assert _go(ev["key"]) == w
        filled = [c for c in ev["changes"] if c["after_state"] == "full"]
        assert ev["key"] in [c["after_key"] for c in filled], ev["changes"]
