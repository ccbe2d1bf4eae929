"""`--core` and `dump` on the command line where no Go or Delve is needed: what a core
cannot do, a file that is not a core, and `dump`'s own usage errors are one line with
their exit code (README, "Exit codes")."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlvsnap.errors import ExitCode
from tests.support import run_dlvsnap


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ("watch", "--core", "{f}", "{f}", "--map", "m"),
            ExitCode.USAGE,
            "--core: a core file cannot run, and watch runs the program",
        ),
        (
            ("snap", "--core", "{f}", "{f}", "--map", "m", "--at", "main.main"),
            ExitCode.USAGE,
            "--core: a core file cannot run, and --at runs the program",
        ),
        (
            ("snap", "--connect", "127.0.0.1:1", "--core", "{f}", "{f}", "--map", "m"),
            ExitCode.USAGE,
            "give exactly one of TARGET, --connect HOST:PORT, --attach PID, --core CORE BINARY",
        ),
        (
            ("snap", "--core", "{f}", "--map", "m"),
            ExitCode.USAGE,
            "invalid value for '--core': File '--map' does not exist",
        ),
        (
            ("snap", "--core", "{f}", "{f}", "--map", "m", "--reader", "proc"),
            ExitCode.USAGE,
            "--reader proc reads a running program's /proc/PID/mem",
        ),
        (
            ("snap", "--core", "{f}", "{f}", "--map", "m"),
            ExitCode.TARGET,
            "core file {f}: not an ELF file",
        ),
        (("dump", "-o", "{f}"), ExitCode.USAGE, "give exactly one of PID, --connect HOST:PORT"),
        (("dump", "1"), ExitCode.USAGE, "missing option '-o' / '--output'"),
        (
            ("dump", "99999999", "-o", "{f}.core"),
            ExitCode.TARGET,
            "no process 99999999 to attach to",
        ),
        (
            ("dump", "1", "-o", "/no/such/dir/x.core"),
            ExitCode.USAGE,
            "could not open file '/no/such/dir/x.core': cannot write in /no/such/dir",
        ),
    ],
    ids=[
        "watch",
        "snap-at",
        "two-ways",
        "one-file",
        "reader-proc",
        "not-elf",
        "dump-neither",
        "dump-no-output",
        "dump-no-process",
        "dump-no-dir",
    ],
)
def test_core_and_dump_errors_are_one_line(
    tmp_path: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("not a core, not a program\n" * 10)
    p = run_dlvsnap(*(a.format(f=f) for a in args), timeout=60)
    assert p.returncode == code, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlvsnap: " + message.format(f=f)), p.stderr
