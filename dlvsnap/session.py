"""A Session owns one dlv server, its connection and the target, and always cleans up.

On every exit path (normal end, error, Ctrl-C) the target is killed and dlv is gone:
Detach(kill) when the connection is usable; otherwise closing the socket (single-client
Delve then kills the target and exits), then SIGTERM/SIGKILL to dlv's process group, then
SIGKILL to the target's pid if it is somehow still there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from dlvsnap.delve.client import DelveClient
from dlvsnap.delve.launcher import DlvProcess, launch
from dlvsnap.delve.rpc import JsonRpcConnection
from dlvsnap.delve.types import Version
from dlvsnap.errors import DelveError, DelveRefusedError, DlvsnapError
from dlvsnap.memory import DelveMem, MemoryReader, ProcMem, choose_reader
from dlvsnap.target import TargetInfo, detect_map_impl, identify
from dlvsnap.toolchain import default_dlv, pick_dlv


class Session:
    def __init__(
        self,
        *,
        dlv: DlvProcess,
        client: DelveClient,
        target: TargetInfo,
        version: Version,
        pid: int,
        dlv_path: str,
        reader: str = "auto",
    ) -> None:
        self.dlv = dlv
        self.dlv_path = dlv_path
        self.reader_choice = reader  # "auto" | "proc" | "delve"
        self.client = client
        self.target = target
        self.version = version
        self.pid = pid
        self._reader: MemoryReader | None = None
        self._closed = False

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
        if dlv_path is None:  # $DLVSNAP_DLV is an explicit choice, like --dlv
            dlv_path = os.environ.get("DLVSNAP_DLV") or pick_dlv(info.go_version) or default_dlv()
        dp = launch(dlv_path, ["exec", str(binary)], program_args=args, sink=sink)
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
        if not interrupted and not conn.closed:
            with contextlib.suppress(DlvsnapError, OSError):
                self.client.detach(kill=True)
        conn.close()
        self.dlv.wait_exit(5.0)
        self.dlv.terminate()  # no-op for a dlv that exited; joins the output drains
        self._kill_target()

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

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Ctrl-C, SIGTERM: the connection may be mid-call, so do not talk to Delve again.
        self.close(interrupted=e is not None and not isinstance(e, Exception))
