"""A Session is one connection to a Delve server and the target behind it, three ways:

* ``launch``: dlvsnap runs ``dlv exec``; on every exit path (normal end, error, Ctrl-C) the
  target is killed and dlv is gone: Detach(kill) when the connection is usable; otherwise
  closing the socket (single-client Delve then kills the target and exits), then
  SIGTERM/SIGKILL to dlv's process group, then SIGKILL to the target's pid if it is still
  there.
* ``attach``: dlvsnap runs ``dlv attach PID``; at the end the target is released and left
  running (Detach without kill; on Ctrl-C closing the socket has single-client Delve
  detach), never killed.
* ``connect``: a headless Delve someone else started with ``--accept-multiclient`` (their
  client may be connected too). dlvsnap never kills, detaches or resumes the target on
  its own; at the end it closes its connection, nothing else. A server without
  multiclient is refused: closing the connection would end that debug session.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from dlvsnap.delve.client import BreakpointSpec, DelveClient
from dlvsnap.delve.launcher import DlvProcess, launch
from dlvsnap.delve.rpc import JsonRpcConnection, parse_address
from dlvsnap.delve.types import Breakpoint, Version
from dlvsnap.errors import (
    DelveError,
    DelveRefusedError,
    DlvsnapError,
    TargetError,
    attach_permission_error,
)
from dlvsnap.memory import DelveMem, MemoryReader, ProcMem, choose_reader
from dlvsnap.target import TargetInfo, detect_map_impl, elf_symbols, identify
from dlvsnap.toolchain import default_dlv, pick_dlv


class Session:
    def __init__(
        self,
        *,
        dlv: DlvProcess | None,
        client: DelveClient,
        target: TargetInfo,
        version: Version,
        pid: int,
        dlv_path: str,
        reader: str = "auto",
        mode: str = "launch",
    ) -> None:
        self.mode = mode  # "launch" | "attach" | "connect"
        self.dlv = dlv
        self.dlv_path = dlv_path
        self.reader_choice = reader  # "auto" | "proc" | "delve"
        self.client = client
        self.target = target
        self.version = version
        self.pid = pid
        self._reader: MemoryReader | None = None
        self._closed = False
        self.owned_breakpoints: set[int] = set()  # created by dlvsnap: removed by dlvsnap
        self._bias: int | None = None

    @classmethod
    def launch(
        cls,
        dlv_path: str | None,
        binary: str | Path,
        args: list[str],
        sink: BinaryIO | None,
        reader: str = "auto",
    ) -> Session:
        """``dlv exec`` the binary (stopped at entry) and identify it.

        With ``dlv_path`` None: $DLVSNAP_DLV if set, else the Delve chosen for the binary's Go
        release (the pinned one when it accepts that release, else an installed one that
        does, see toolchain.py).
        ``reader`` chooses how memory is read: "proc", "delve", or "auto" (see memory()).
        """
        info = identify(binary)
        return cls._start(
            dlv_path,
            info,
            ["exec", str(binary)],
            args=args,
            sink=sink,
            reader=reader,
            mode="launch",
        )

    @classmethod
    def attach(
        cls, dlv_path: str | None, pid: int, sink: BinaryIO | None = None, reader: str = "auto"
    ) -> Session:
        """``dlv attach PID``: the running program stops until the session closes, then is
        released (left running)."""
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except PermissionError:  # it exists: not "no process"
            raise attach_permission_error(pid) from None
        except OSError as e:
            raise TargetError(f"no process {pid} to attach to ({e.strerror})") from None
        info = identify(exe.removesuffix(" (deleted)"))
        return cls._start(
            dlv_path, info, ["attach", str(pid)], args=[], sink=sink, reader=reader, mode="attach"
        )

    @classmethod
    def connect(cls, address: str, binary: str | None = None, reader: str = "auto") -> Session:
        """A headless Delve started with --accept-multiclient, at HOST:PORT. ``binary`` is the
        program's executable when it is not readable as /proc/PID/exe (a remote server)."""
        conn = JsonRpcConnection(*parse_address(address))
        try:
            client = DelveClient(conn)
            client.set_api_version(2)  # per connection; Delve's own `dlv connect` does it too
            version = client.get_version()
            if not client.is_multiclient():
                raise DelveRefusedError(
                    f"the Delve server at {address} was not started with --accept-multiclient:"
                    " dlvsnap's disconnecting would end that debug session"
                )
            if client.state(non_blocking=True).running:
                raise TargetError(
                    f"the program behind {address} is running: stop it first (a breakpoint, "
                    "or halt in your client); dlvsnap does not stop it for you"
                )
            pid = client.process_pid()
            path = binary or _exe_of(pid)
            info = identify(path)
            info = dataclasses.replace(info, map_impl=detect_map_impl(client))
            return cls(
                dlv=None,
                client=client,
                target=info,
                version=version,
                pid=pid,
                dlv_path="",
                reader=reader,
                mode="connect",
            )
        except BaseException:
            conn.close()
            raise

    @classmethod
    def _start(
        cls,
        dlv_path: str | None,
        info: TargetInfo,
        mode_args: list[str],
        *,
        args: list[str],
        sink: BinaryIO | None,
        reader: str,
        mode: str,
    ) -> Session:
        if dlv_path is None:  # $DLVSNAP_DLV is an explicit choice, like --dlv
            dlv_path = os.environ.get("DLVSNAP_DLV") or pick_dlv(info.go_version) or default_dlv()
        dp = launch(dlv_path, mode_args, program_args=args, sink=sink)
        client: DelveClient | None = None
        try:
            try:
                client = DelveClient(JsonRpcConnection(dp.host, dp.port))
                client.set_api_version(2)
                version = client.get_version()
            except DelveError as e:
                # Delve prints its listening line, then may refuse the target and exit.
                exited = dp.wait_exit(2.0)
                dp.terminate()  # joins the output drains: the whole stderr is read
                if exited:
                    msg = dp.error_summary()
                    if "version of delve" in msg.lower():
                        msg += " (scripts/toolchains installs a Delve that accepts it; or --dlv)"
                    raise DelveRefusedError(msg) from e
                raise
            dp.pass_output()
            pid = client.state().pid or client.process_pid()
            info = dataclasses.replace(info, map_impl=detect_map_impl(client))
            return cls(
                dlv=dp,
                client=client,
                target=info,
                version=version,
                pid=pid,
                dlv_path=dlv_path,
                reader=reader,
                mode=mode,
            )
        except BaseException:
            if client is not None:
                client.conn.close()
            dp.terminate()
            raise

    def memory(self, probe_addr: int, probe_size: int) -> MemoryReader:
        """The memory reader for this session, chosen once: with "auto", /proc/PID/mem when it
        is readable and agrees with Delve on a probe, else ExamineMemory."""
        if self._reader is None:
            if self.reader_choice == "delve":
                self._reader = DelveMem(self.client)
            elif self.reader_choice == "proc":
                self._reader = ProcMem(self.pid)
            else:
                self._reader = choose_reader(self.client, self.pid, probe_addr, probe_size)
        return self._reader

    @property
    def memory_reader_name(self) -> str:
        return self._reader.name if self._reader is not None else "none"

    def close(self, interrupted: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        if isinstance(self._reader, ProcMem):
            self._reader.close()
        conn = self.client.conn
        if self.mode == "connect" or self.dlv is None:
            if interrupted and self.owned_breakpoints:
                self._interrupted_connect_cleanup()
            elif self.owned_breakpoints and not conn.closed:  # an error left some behind
                with contextlib.suppress(DlvsnapError, OSError):
                    if not self.client.state(non_blocking=True).running:
                        self.clear_owned_breakpoints()
            conn.close()  # someone else's server and target: leave both as they are
            return
        if not interrupted and not conn.closed:
            with contextlib.suppress(DlvsnapError, OSError):
                if self.mode == "attach" and self.client.state(non_blocking=True).running:
                    self.client.command("halt")
                self.client.detach(kill=self.mode == "launch")
        conn.close()  # single-client Delve: ends the session (kills launched, detaches attached)
        self.dlv.wait_exit(10.0 if self.mode == "attach" else 5.0)
        self.dlv.terminate()  # no-op for a dlv that exited; joins the output drains
        if self.mode == "launch":
            self._kill_target()

    def _interrupted_connect_cleanup(self) -> None:
        """Ctrl-C while our connection may be mid-call (a continue in flight): a second
        connection stops the target (it would run on without us) and removes dlvsnap's
        breakpoints; the user's are left as they are."""
        conn = self.client.conn
        with contextlib.suppress(DlvsnapError, OSError):
            c = DelveClient(JsonRpcConnection(conn.host, conn.port), default_timeout=10.0)
            try:
                if c.state(non_blocking=True).running:
                    c.command("halt", timeout=10.0)
                self.clear_owned_breakpoints(c)
            finally:
                c.conn.close()

    def _kill_target(self) -> None:
        if self.pid <= 0:
            return
        try:
            exe = os.readlink(f"/proc/{self.pid}/exe")
        except OSError:
            return  # gone
        if Path(exe.removesuffix(" (deleted)")).name == Path(self.target.path).name:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGKILL)

    def load_bias(self) -> int:
        """Where the program is loaded minus where its ELF symbols say (0 unless it is a
        position-independent executable): runtime.firstmoduledata.text vs runtime.text."""
        if self._bias is None:
            self._bias = 0
            text = elf_symbols(self.target.path, ["runtime.text"]).get("runtime.text")
            if text is not None:
                with contextlib.suppress(DelveError, ValueError):
                    self._bias = self.client.eval("runtime.firstmoduledata.text").as_int() - text
        return self._bias

    def create_breakpoint(self, spec: BreakpointSpec) -> Breakpoint:
        bp = self.client.create_breakpoint(spec)
        self.owned_breakpoints.add(bp.id)
        return bp

    def clear_owned_breakpoints(self, client: DelveClient | None = None) -> None:
        """Remove dlvsnap's breakpoints (only those); needs a stopped target."""
        c = client or self.client
        if c.conn.closed:
            return
        for bp_id in sorted(self.owned_breakpoints):
            with contextlib.suppress(DelveError):  # already gone (or the program ended)
                c.clear_breakpoint(bp_id)
            self.owned_breakpoints.discard(bp_id)

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Ctrl-C, SIGTERM: the connection may be mid-call, so do not talk to Delve again.
        self.close(interrupted=e is not None and not isinstance(e, Exception))


def _exe_of(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except OSError:
        raise TargetError(
            f"cannot read /proc/{pid}/exe (a remote Delve server?): pass the program's "
            "executable with --binary"
        ) from None
