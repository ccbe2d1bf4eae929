"""Every command example of README.md, read from README.md and run as a real process
(tests/readme.py: which test runs which block; tests/unit/test_readme.py: that none is
left out). `dlvsnap` is `python -m dlvsnap` of this checkout; the placeholders the README
keeps on purpose get what it says they stand for: `./prog` is fixtures/interactive built
with -N -l, `12345` the pid of it running, `127.0.0.1:4040` the address of a `dlv` server
the test starts as the README does."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dlvsnap.build import build_cached
from tests import readme
from tests.live.test_interactive import LISTEN_RE, running_program
from tests.support import (
    FIXTURES,
    ROOT,
    build_fixture,
    dlv_binary,
    go_toolchain,
    parse_oracle,
)

pytestmark = pytest.mark.live

DLVSNAP = f"{shlex.quote(sys.executable)} -m dlvsnap"


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(go_toolchain()).parent}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),  # this checkout's dlvsnap, from any directory
    }


def run(cmd: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """A README command line, as a shell runs it (redirections included)."""
    assert cmd.startswith(("dlvsnap ", "diff ")), cmd
    line = re.sub(r"^dlvsnap ", f"{DLVSNAP} ", cmd)
    return subprocess.run(
        ["bash", "-c", line],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def wd(tmp_path: Path) -> Path:
    """A directory like the repository root for the examples: `fixtures` and `./prog`
    (fixtures/interactive, as the README says), files they write stay here."""
    assert readme.README_PROG_BUILD in " ".join(readme.text().split())
    (tmp_path / "fixtures").symlink_to(FIXTURES)
    shutil.copy(build_fixture(readme.README_PROG), tmp_path / "prog")
    return tmp_path


class Commands:
    """A block's commands: each test takes the ones it runs, and must leave none."""

    def __init__(self, commands: list[str]) -> None:
        self.left = list(commands)
        assert self.left

    def take(self, pattern: str) -> str:
        found = [c for c in self.left if re.search(pattern, c)]
        assert found, f"no command matches {pattern!r} in {self.left}"
        self.left.remove(found[0])
        return found[0]

    def done(self) -> None:
        assert self.left == [], f"README commands no test runs: {self.left}"


def _events(stdout: str) -> list[dict[str, object]]:
    return [json.loads(ln) for ln in stdout.splitlines() if ln.strip()]


# -- the demo ------------------------------------------------------------------------------

SHAPES = [
    (r"0x[0-9a-f]+", "0x_"),
    (r"h2=[0-9a-f]{2}", "h2=_"),
    (r"group \d+ slot \d+", "group _ slot _"),
    (r"\b(empty|deleted)\b", "emptied"),
    (r"   (growthLeft \d+ -> \d+|tombstonePossible false -> true)", ""),
    (r"tombstones left( +)\d+", r"tombstones left\1_"),
    (r"go1\.\d+(\.\d+)?", "go1._"),
    (r"\(128 slots(, \d+ of them tombstones)?\)", "(128 slots, _)"),
]


def _shape(line: str) -> str:
    """A line without what the random hash seed changes: slot positions, hashes,
    addresses, which slots became tombstones, and the Go release's number."""
    for pat, repl in SHAPES:
        line = re.sub(pat, repl, line)
    return line


def test_make_demo_prints_what_the_readme_shows() -> None:
    shown = readme.block("demo-output").text.splitlines()
    command = shown[0].removeprefix(".venv/bin/")  # make's echo of its recipe line
    program = subprocess.run(
        [str(build_fixture("deletes"))], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    # what a terminal shows: dlvsnap's stdout and stderr, the program's output in the latter
    r = subprocess.run(
        ["bash", "-c", re.sub(r"^dlvsnap ", f"{DLVSNAP} ", command)],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stdout
    printed = r.stdout.splitlines()
    # the program's lines: all of them, in its order (they hold no address: exact)
    assert [ln for ln in printed if ln in program] == program
    assert [ln for ln in shown[1:] if ln in program] == program

    # dlvsnap's lines, line by line, but for what the hash seed decides; the advice, after
    # the last blank line, as one paragraph (how it wraps depends on the tombstones' count)
    def shaped(lines: list[str]) -> list[str]:
        mine = [ln for ln in lines if ln not in program]
        cut = len(mine) - mine[::-1].index("")
        return [_shape(ln) for ln in mine[:cut]] + [_shape(" ".join(mine[cut:]))]

    assert shaped(shown[1:]) == shaped(printed)
    assert "#5 delete key=1000" in r.stdout and "deletes seen            6" in r.stdout


# -- usage -----------------------------------------------------------------------------------


def test_usage_examples(wd: Path) -> None:
    cmds = Commands(readme.block("usage").commands)

    r = run(cmds.take(r"watch \S*fixtures/deletes --map m$"), wd)
    assert r.returncode == 0, r.stderr
    assert "deletes seen            6 (1 of an absent key)" in r.stdout
    assert "DLVSNAP-ORACLE done deletes=6" in r.stderr  # the program's output: stderr

    cmd = cmds.take(r"watch \./prog --map main\.Inventory -- \d+$")
    rounds = int(cmd.rsplit(" ", 1)[1])
    r = run(cmd, wd)
    assert r.returncode == 0, r.stderr
    assert '#1 delete key="item-00"' in r.stdout
    assert f"deletes seen            {rounds}\n" in r.stdout
    assert f"interactive: round {rounds - 1} 40 20" in r.stderr

    r = run(cmds.take(r"watch \./prog --map local --json$"), wd)
    assert r.returncode == 0, r.stderr
    deletes = [e for e in _events(r.stdout) if e["event"] == "delete"]
    assert [d["key"] for d in deletes] == [i % 20 for i in range(50)]  # 50 rounds
    assert "interactive: round 49 40 20" in r.stderr

    # the pinned Delve accepts the machine's Go, and `make setup` installed it
    r = run(cmds.take(r"setup --for \./prog$"), wd)
    assert r.returncode == 0, r.stderr
    assert "already installed" in r.stdout, r.stdout
    cmds.done()


def test_delve_setup_examples(wd: Path) -> None:
    """Each command names a Delve that `make setup toolchains` installed: already there."""
    cmds = Commands(readme.block("delve-setup").commands)
    for pattern, release in [
        (r"^dlvsnap setup$", "v1.27.2"),
        (r"setup --for \./prog$", "v1.27.2"),
        (r"setup --go 1\.22$", "v1.25.2"),
    ]:
        r = run(cmds.take(pattern), wd)
        assert r.returncode == 0, r.stderr
        assert f"Delve {release}" in r.stdout and "already installed" in r.stdout, r.stdout
    cmds.done()


def test_optimised_binary_example(tmp_path: Path) -> None:
    example = readme.block("optimised-error")
    (cmd,) = example.commands
    assert "go build -C fixtures/realcode -o ../../realprog ./realprog" in " ".join(
        readme.text().split()
    )
    realprog = build_cached(FIXTURES / "realcode", "realprog", go_toolchain(), gcflags="")
    shutil.copy(realprog, tmp_path / "realprog")
    r = run(cmd, tmp_path)
    assert r.returncode == 3, r.stderr  # the exit code of "names no variable"
    said = r.stdout.splitlines() + r.stderr.splitlines()
    assert [_shape(ln) for ln in said] == [_shape(ln) for ln in example.output]


# -- snap, --connect, diff -------------------------------------------------------------------

CONNECT = r"--connect 127\.0\.0\.1:4040 "


def test_snap_examples(wd: Path) -> None:
    cmds = Commands(readme.block("snap").commands)

    r = run(cmds.take(r"snap \./prog --at main\.go:\d+ --map local$"), wd)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("local (map[int]int) at 0x") and ", main.main main.go:" in r.stdout
    assert "table 0: used 20/" in r.stdout  # round 0, before its delete

    r = run(cmds.take(r"snap \./prog --at main\.checkpoint --map local --frame 1$"), wd)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("local (map[int]int) at 0x") and "table 0: used 20/" in r.stdout

    cmd = cmds.take(r"snap --attach 12345 --map main\.Inventory$")
    with running_program(20) as p:
        r = run(cmd.replace("12345", str(p.pid)), wd)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("main.Inventory (map[string]int) at 0x")
        assert re.search(r"table 0: used (39|40)/", r.stdout)
        assert p.poll() is None  # released, running
    # the rest run against a user's server: test_connect_examples
    assert cmds.left and all(
        re.search(CONNECT, c) or c.startswith("dlvsnap diff ") for c in cmds.left
    )


def test_phases_example(wd: Path) -> None:
    """The phase table as the README shows it, but for the pid and the tombstones (which
    slots a delete marks deleted rather than empty depends on the hash seed); the
    locations are the fixture's phase lines."""
    from tests.live.test_phases import _line

    block = readme.block("phases")
    (cmd,) = block.commands
    assert cmd.split("--at ")[1:] == [f"{_line(m)} " for m in ("filled", "emptied")] + [
        _line("refilled")
    ]
    r = run(cmd, wd)
    assert r.returncode == 0, r.stderr

    def shape(text: str) -> list[list[str]]:
        out = []
        table, _, said = text.partition("\n\n")  # the advice after a blank line: its words
        said = re.sub(r"[\d,]+ of them tombstones", "_ of them tombstones", " ".join(said.split()))
        for raw in table.splitlines():
            line = re.sub(
                r"tombstones [+-][\d,]+", "tombstones _", re.sub(r"pid \d+", "pid _", raw)
            )
            cols = re.split(r"\s{2,}", line.strip())
            if re.fullmatch(r"\d", cols[0]):  # a phase's row: its tombstones column
                cols[4] = "_"
            if not set(line) <= {"-", " "}:  # the rule under the head: widths vary
                out.append(cols)
        return [*out, [said]]

    assert shape(r.stdout) == shape("\n".join(block.text.splitlines()[1:]))


def _wait_for(path: Path, text: str, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        assert proc.poll() is None, path.read_text(errors="replace")
        assert time.monotonic() < deadline, path.read_text(errors="replace")
        time.sleep(0.1)


def test_connect_examples(wd: Path) -> None:
    """The README's server and client (`dlv exec ... --headless`, `dlv connect`: the client
    gets its commands on stdin), then, while the client has the program stopped, the
    `--connect` commands of the section and of the snap block, and the diff."""
    server_cmd, client_cmd = readme.block("connect").commands
    assert server_cmd.startswith("dlv exec ./prog ") and client_cmd.startswith("dlv connect ")
    dlv = dlv_binary()
    server = subprocess.Popen(
        [dlv, *shlex.split(server_cmd.replace("127.0.0.1:4040", "127.0.0.1:0"))[1:]],
        cwd=wd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    client: subprocess.Popen[str] | None = None
    try:
        assert server.stdout is not None
        seen = b""
        while not (m := LISTEN_RE.search(seen)):
            line = server.stdout.readline()
            assert line, seen.decode(errors="replace")
            seen += line
        address = f"127.0.0.1:{int(m.group(1))}"
        client_log = wd / "client.log"
        with client_log.open("w") as log:
            client = subprocess.Popen(
                [dlv, *shlex.split(client_cmd.replace("127.0.0.1:4040", address))[1:]],
                cwd=wd,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        assert client.stdin is not None
        client.stdin.write("break main.checkpoint\ncontinue\n")
        client.stdin.flush()
        _wait_for(client_log, "[Breakpoint 1] main.checkpoint()", client)

        def here(cmd: str) -> subprocess.CompletedProcess[str]:
            return run(cmd.replace("127.0.0.1:4040", address), wd)

        inline = Commands(readme.inline_commands())
        r = here(inline.take(r"^dlvsnap snap " + CONNECT + r"--map main\.Inventory$"))
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("main.Inventory (map[string]int)")
        assert "table 0: used 40/" in r.stdout
        r = here(inline.take(r"^dlvsnap watch " + CONNECT + r"--map main\.Inventory$"))
        assert r.returncode == 0, r.stderr
        assert '#1 delete key="item-00"' in r.stdout and "#2" not in r.stdout
        assert "main.checkpoint" in r.stdout + r.stderr  # ended at the user's breakpoint
        inline.done()

        snap = Commands([c for c in readme.block("snap").commands if re.search(CONNECT, c)])
        r = here(snap.take(r"snap .*--save before\.json$"))
        assert r.returncode == 0 and (wd / "before.json").exists(), r.stderr
        r = here(snap.take(r"watch .*--max-events 1$"))
        assert r.returncode == 0, r.stderr
        assert '#1 delete key="item-01"' in r.stdout and "#2" not in r.stdout
        r = here(snap.take(r"snap .*--save after\.json$"))
        assert r.returncode == 0 and (wd / "after.json").exists(), r.stderr
        snap.done()
        (diff,) = [c for c in readme.block("snap").commands if c.startswith("dlvsnap diff ")]
        r = run(diff, wd)
        assert r.returncode == 0, r.stderr
        assert 'key "item-01"' in r.stdout and "used 40 -> 39" in r.stdout

        # the user's session goes on: the client takes the program to its end
        client.stdin.write("clearall\ncontinue\n")
        client.stdin.flush()
        _wait_for(client_log, "has exited with status 0", client)
        client.stdin.write("exit\ny\n")
        client.stdin.close()
        client.wait(timeout=60)
    finally:
        for p in (client, server):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=30)


# -- report, layouts verify -------------------------------------------------------------------


def test_report_example(wd: Path) -> None:
    cmds = Commands(readme.block("report").commands)
    r = run(cmds.take(r"watch \./prog .*--json > events\.jsonl$"), wd)
    assert r.returncode == 0, r.stderr
    events = _events((wd / "events.jsonl").read_text())
    assert sum(e["event"] == "delete" for e in events) == 50
    r = run(cmds.take(r"^dlvsnap report events\.jsonl -o report\.html$"), wd)
    assert r.returncode == 0, r.stderr
    page = (wd / "report.html").read_text()
    assert '<meta http-equiv="Content-Security-Policy"' in page
    data = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    assert data, page[:500]
    embedded = json.loads(data.group(1))
    assert embedded["summary"]["deletes"] == len(embedded["ev"]) == 50
    assert embedded["ev"][0]["k"] == '"item-00"'  # the key as watch --json wrote it
    cmds.done()


def test_layouts_verify_example(wd: Path) -> None:
    example = readme.block("layouts-verify")
    (cmd,) = example.commands
    r = run(cmd, wd)
    assert r.returncode == 0, r.stderr
    assert [_shape(ln) for ln in r.stdout.splitlines()] == [_shape(ln) for ln in example.output]


# -- the cheat-sheet of "Which map is watched" -------------------------------------------------

REALPROG = "realprog"
CHEATSHEET = "cheatsheet"
DELETES = "deletes"
# an example -> the program whose map it names, the program's argument (realprog: the
# scenario, whose oracle lines give the deleted keys), the keys it deletes otherwise
CHEAT_SHEET: dict[str, tuple[str, str, list[object] | None]] = {
    "--map main.cache": (CHEATSHEET, "", ["k3", "k7", "k11"]),
    "--map example.com/pkg.Var": (CHEATSHEET, "", [3, 7, 11]),
    "--map main.srv.byID": (CHEATSHEET, "", [3, 7, 11]),
    "--map main.shards[3]": (CHEATSHEET, "", [3, 7, 11]),
    "--map m": (DELETES, "", [17, 42, 99, 0, 1000, 63]),
    "--map c.items": (REALPROG, "ttl", None),
    "--map s.byID": (REALPROG, "store", None),
    "--map (*c).items": (REALPROG, "ttl", None),
    "--map w.base.inner.counts": (REALPROG, "embedded", None),
    "--map shards[3]": (REALPROG, "shards", None),
    '--map outer["b"]': (REALPROG, "outer", None),
    "--map g.m --frame 1": (REALPROG, "set", None),
    "--map h --in main.main": (REALPROG, "header", None),
    "--site main.go:35": (CHEATSHEET, "", [3, 7, 11]),
    "--site github.com/patrickmn/go-cache.(*cache).delete": (REALPROG, "ttl", None),
    "--map c.items --site (*cache).delete": (REALPROG, "ttl", None),
}


def test_cheat_sheet_examples(tmp_path: Path) -> None:
    go = go_toolchain()
    programs = {
        REALPROG: build_cached(FIXTURES / "realcode", "realprog", go),
        CHEATSHEET: build_cached(FIXTURES / "cheatsheet", "prog", go),
        DELETES: build_fixture("deletes"),
    }
    line = next(
        n
        for n, text in enumerate((FIXTURES / "cheatsheet/prog/main.go").read_text().splitlines(), 1)
        if "// SITE:byID" in text
    )
    examples = readme.cheat_sheet()
    keyed = {" ".join(words): words for words in examples}
    assert len(keyed) == len(examples) and set(keyed) == set(CHEAT_SHEET), set(keyed) ^ set(
        CHEAT_SHEET
    )
    assert f"--site main.go:{line}" in keyed

    def watch(key: str) -> tuple[str, subprocess.CompletedProcess[str], str]:
        program, arg, _ = CHEAT_SHEET[key]
        out = tmp_path / f"{abs(hash(key))}.txt"
        cmd = [sys.executable, "-m", "dlvsnap", "watch", str(programs[program]), *keyed[key]]
        cmd += ["--json", "--target-output", str(out), *(["--", arg] if arg else [])]
        r = subprocess.run(
            cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300, check=False
        )
        return key, r, out.read_text() if out.exists() else ""

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(watch, CHEAT_SHEET))
    for key, r, program_output in results:
        assert r.returncode == 0, (key, r.stderr)
        deletes = [e for e in _events(r.stdout) if e["event"] == "delete"]
        expected = CHEAT_SHEET[key][2]
        if expected is None:  # realprog: the program's own account of the watched map
            oracle = parse_oracle(program_output)
            assert oracle, (key, program_output)
            got = [
                (str(d["key"]).encode().hex() if isinstance(d["key"], str) else str(d["key"]))
                for d in deletes
            ]
            assert got == [o.key for o in oracle], key
            assert [d["key_present"] for d in deletes] == [o.present for o in oracle], key
        else:
            assert [d["key"] for d in deletes] == expected, key


# -- maps: the production workflow ------------------------------------------------------------


def test_census_example(wd: Path) -> None:
    """The README's workflow on fixtures/census: built as its first line says (as the wd
    fixture builds `./prog`) and started (by the test, to stop it at the end), then a
    census of it attached, a core, the census of the core and a snapshot from it. The
    census prints what the README shows but for the pid and the figures the hash seed
    moves (tombstones; tables, so bytes)."""
    build, *cmds = readme.block("census").commands
    assert build == "go build -C fixtures -gcflags=all='-N -l' -o ../census ./census && ./census &"
    # `fixtures` here is a link to the checkout's: built as `./prog` is (the wd fixture)
    shutil.copy(build_fixture("census"), wd / "census")
    out = wd / "census.txt"
    with open(out, "wb") as sink:
        prog = subprocess.Popen([str(wd / "census")], cwd=wd, stdout=sink)
    try:
        deadline = time.monotonic() + 60
        while "DLVSNAP-CENSUS" not in out.read_text():
            assert prog.poll() is None and time.monotonic() < deadline, out.read_text()
            time.sleep(0.05)
        said = []
        for cmd in cmds:
            r = run(cmd.replace("12345", str(prog.pid)), wd)
            assert r.returncode == 0, (cmd, r.stderr)
            said.append(r.stdout)
        assert prog.poll() is None  # released, running
    finally:
        prog.kill()
        prog.wait(timeout=30)

    def shape(text: str) -> list[str]:
        lines = []
        for raw in text.strip().splitlines():
            line = re.sub(r"pid \d+", "pid _", raw)
            line = re.sub(r"go1\.\d+\.\d+", "go1._", line)
            line = re.sub(r"\d[\d,]*", "_", line)  # every figure: only the words are kept
            if not set(line) <= {"-", " "}:
                lines.append(" ".join(line.split()))
        return lines

    table, _, advice = said[0].partition("\n\n")
    shown_table, _, shown_advice = "\n".join(readme.block("census-output").output).partition("\n\n")
    assert shape(table) == shape(shown_table)
    assert " ".join(shape(advice)) == " ".join(shape(shown_advice))
    assert said[1].startswith("wrote census.core: ") and said[1].rstrip().endswith(
        "released, running"
    )
    rows = said[2].splitlines()
    assert rows[3].rstrip().endswith("main.drained")  # the one map holding 100,000+ B
    counts = re.search(r"^(\d+) maps \((\d+) not shown: ", said[2], re.M)
    assert counts and int(counts[2]) == int(counts[1]) - 1, said[2]
    assert said[3].startswith("main.drained (map[int]int) at 0x")
    # the groups it holds, counted (not its bytes over a group's size: the allocator rounds)
    groups = re.search(r"in [\d,]+ tables / ([\d,]+) groups for 0 live entries", said[3])
    slots = re.search(r"^slots: ([\d,]+) ", said[3], re.M)
    assert groups and slots, said[3]
    assert int(groups[1].replace(",", "")) * 8 == int(slots[1].replace(",", ""))
