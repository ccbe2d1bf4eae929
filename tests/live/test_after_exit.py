"""After the program ends: the Python API says the program has exited (ProgramExitedError,
exit code 5) instead of a failed read, and a watch keeps its summary and the exit status;
`watch`/`snap --connect` to a server whose program exited, or is running, is one line and
exit 5."""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Iterator

import pytest

import dlvsnap
from dlvsnap.delve.client import BreakpointSpec, DelveClient
from dlvsnap.delve.rpc import JsonRpcConnection
from dlvsnap.errors import ExitCode, ProgramExitedError
from tests.support import build_fixture, dlv_binary, run_dlvsnap

pytestmark = pytest.mark.live

LISTEN_RE = re.compile(rb"API server listening at: 127\.0\.0\.1:(\d+)")


@contextlib.contextmanager
def delve_server(fixture: str, *args: str) -> Iterator[tuple[str, DelveClient]]:
    """A user's `dlv exec --headless --accept-multiclient` server, and their client."""
    cmd = [dlv_binary(), "exec", str(build_fixture(fixture)), "--headless"]
    cmd += ["--accept-multiclient", "--api-version=2", "--listen=127.0.0.1:0", "--", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        seen, deadline = b"", time.monotonic() + 60
        while not (m := LISTEN_RE.search(seen)):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, seen.decode(errors="replace")
            assert time.monotonic() < deadline, "dlv exec did not start"
            seen += line
        user = DelveClient(JsonRpcConnection("127.0.0.1", int(m.group(1))))
        user.set_api_version(2)
        try:
            yield f"127.0.0.1:{int(m.group(1))}", user
        finally:
            user.conn.close()
    finally:
        proc.terminate()  # dlv's own clean-up kills the program
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def test_the_api_after_a_watch_ran_to_the_end() -> None:
    with dlvsnap.launch(build_fixture("interactive"), args=["3"]) as prog:
        prog.run_to("main.checkpoint")
        inventory = prog.map("main.Inventory")
        watch = prog.watch(inventory)
        assert watch.exit_status is None and watch.summary.deletes == 0
        keys = [event.key for event in watch]
        assert keys == ["item-00", "item-01", "item-02"]
        # the summary `dlvsnap watch` prints, and how the program ended
        assert (watch.summary.deletes, watch.summary.keys_removed) == (3, 3)
        assert watch.exit_status == 0 and prog.exit_status == 0
        text = str(watch.summary)
        assert text.startswith("summary\ndeletes seen            3\n"), text
        assert "keys removed            3" in text and "map holds now" in text
        # whatever needs the program now says it has exited
        calls = {
            "snapshot main.Inventory": inventory.snapshot,
            "evaluate main.Inventory": lambda: prog.map("main.Inventory"),
            "run to main.checkpoint": lambda: prog.run_to("main.checkpoint"),
            "watch main.Inventory": lambda: next(prog.watch(inventory)),
        }
        for what, call in calls.items():
            with pytest.raises(ProgramExitedError) as e:
                call()
            assert str(e.value) == f"cannot {what}: the program exited (status 0)"
            assert (e.value.status, e.value.exit_code) == (0, ExitCode.TARGET)


def test_the_api_learns_from_delve_that_the_program_exited() -> None:
    """A connected script holds a map; the user's client runs the program to its end."""
    with delve_server("interactive", "2") as (address, user):
        bp = user.create_breakpoint(BreakpointSpec(function_name="main.checkpoint"))
        assert not user.command("continue").exited
        with dlvsnap.connect(address) as prog:
            inventory = prog.map("main.Inventory")
            assert inventory.snapshot().count == 40
            user.clear_breakpoint(bp.id)
            st = user.command("continue")
            assert st.exited and st.exit_status == 0
            with pytest.raises(ProgramExitedError) as e:
                inventory.snapshot()  # was: MemoryReadError: short read at 0x…
            assert str(e.value) == "cannot snapshot main.Inventory: the program exited (status 0)"
            assert prog.exit_status == 0


@pytest.mark.parametrize("cmd", ["watch", "snap"])
def test_connect_to_a_program_that_exited(cmd: str) -> None:
    with delve_server("deletes") as (address, user):
        st = user.command("continue")
        assert st.exited and st.exit_status == 0
        r = run_dlvsnap(cmd, "--connect", address, "--map", "m")
        assert r.returncode == ExitCode.TARGET, r.stderr
        assert r.stderr == (
            f"dlvsnap: the program behind {address} exited (status 0): nothing to watch or "
            "read; `restart` it in your client and stop it where you want\n"
        )
        with pytest.raises(ProgramExitedError):
            dlvsnap.connect(address)


def test_connect_to_a_running_program() -> None:
    with delve_server("interactive", "1000000", "10") as (address, user):
        user.send_command("continue")  # the user's client lets it run
        time.sleep(0.5)
        r = run_dlvsnap("watch", "--connect", address, "--map", "main.Inventory")
        assert r.returncode == ExitCode.TARGET, r.stderr
        assert r.stderr == (
            f"dlvsnap: the program behind {address} is running: stop it first (a breakpoint, "
            "or halt in your client); dlvsnap does not stop it for you\n"
        )
        # and left as it was: running
        other = DelveClient(JsonRpcConnection("127.0.0.1", int(address.rsplit(":", 1)[1])))
        other.set_api_version(2)
        assert other.state(non_blocking=True).running
        other.conn.close()
