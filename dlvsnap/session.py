"""A Session is one connection to a Delve server and the target behind it, three ways:

* ``launch``: dlvsnap runs ``dlv exec`` (single client); on every exit path (normal end,
  error, Ctrl-C) the target is killed and dlv is gone: Detach(kill) when the connection is
  usable; otherwise closing the socket (single-client Delve then kills the target and
  exits), then SIGTERM/SIGKILL to dlv's process group, then SIGKILL to the target's pid if
  it is still there. A SIGKILL of dlvsnap closes the socket too.
* ``attach``: dlvsnap runs ``dlv attach PID --accept-multiclient``; at the end the target
  is released, running: stopped, cleared of dlvsnap's breakpoints, and detached without
  kill once no stray SIGTRAP is pending (release.py). On Ctrl-C/SIGTERM the release goes
  through a second connection (the first may be mid-call); after a SIGKILL of dlvsnap, a
  guardian process (guardian.py) does it.
* ``connect``: a headless Delve someone else started with ``--accept-multiclient`` (their
  client may be connected too). dlvsnap never kills or detaches the target; it leaves it
  stopped, with only the user's breakpoints, on every exit path (a second connection on
  Ctrl-C/SIGTERM, the guardian after a SIGKILL), and closes its connection; except that a
  program dlvsnap never resumed, and found running at the end, is the other client's to
  stop (``_may_halt``). A single-client server that answers is used, and ends with
  dlvsnap's connection (README).
* ``core``: dlvsnap runs ``dlv core BINARY CORE`` (single client) for goroutines, frames,
  variables and types, and reads memory from the core file itself (coremem.py). Nothing
  runs: what would run the program (a breakpoint, a continue) is a CoreCannotRunError. At
  the end dlv is stopped; no process of the program is touched (the core's pid may be a
  live process's, even the very one dumped).

dlvsnap's breakpoints carry a name with the session's prefix: that is how they are told
from the user's, in a stop and in clean-up, by this process or the guardian.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import signal
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from dlvsnap.coremem import CoreMem
from dlvsnap.delve import release
from dlvsnap.delve.client import CURRENT_GOROUTINE, BreakpointSpec, DelveClient, exited_with
from dlvsnap.delve.guardian import Guardian
from dlvsnap.delve.launcher import DlvProcess, launch
from dlvsnap.delve.memory import DelveMem
from dlvsnap.delve.rpc import JsonRpcConnection, parse_address
from dlvsnap.delve.types import Breakpoint, Version
from dlvsnap.errors import (
    CoreCannotRunError,
    DelveError,
    DelveRefusedError,
    DlvsnapError,
    MemoryReadError,
    ProgramExitedError,
    RPCError,
    TargetError,
    UsageError,
    attach_permission_error,
)
from dlvsnap.memory import MemoryReader, ProcMem
from dlvsnap.target import TargetInfo, elf_symbols, identify
from dlvsnap.toolchain import default_dlv, pick_dlv, setup_hint
from dlvsnap.watch.options import exit_words

_SESSIONS = itertools.count(1)
# Delve releases before this one never report a trap of x86's 4th debug register (DR3:
# amd64util.GetActiveBreakpoint looked at DR0-DR2 only; fixed with go-delve/delve#3742): the
# trap is taken for a spurious stop and the program goes on.
DR3_REPORTED_FROM = (1, 23, 0)


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
        guardian: Guardian | None = None,
        single_client: bool = False,
    ) -> None:
        self.mode = mode  # "launch" | "attach" | "connect" | "core"
        # connect: dlvsnap is the server's one client; the session ends when it disconnects
        self.single_client = single_client
        self.dlv = dlv
        self.dlv_path = dlv_path
        self.reader_choice = reader  # "auto" | "proc" | "delve"
        self.core_mem: CoreMem | None = None  # core: the core file's memory
        self.client = client
        self.target = target
        self.version = version
        self.pid = pid
        self._reader: MemoryReader | None = None
        self._closed = False
        # the names of dlvsnap's breakpoints: created by dlvsnap, removed by dlvsnap
        self.bp_prefix = f"dlvsnap{os.getpid()}x{next(_SESSIONS)}n"
        self._bp_names = itertools.count(1)
        self._created = False  # whether dlvsnap set a breakpoint or watchpoint of its own
        self._bias: int | None = None
        self.guardian = guardian  # attach, connect: releases the program if dlvsnap cannot
        if guardian is not None and client.conn.port:
            guardian.tell(
                "server",
                client.conn.host,
                client.conn.port,
                pid,
                int(mode == "attach"),
                self.bp_prefix,
            )

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
        released (left running), on every exit path (see the module docstring)."""
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except PermissionError:  # it exists: not "no process"
            raise attach_permission_error(pid) from None
        except OSError as e:
            raise TargetError(f"no process {pid} to attach to ({e.strerror})") from None
        info = identify(exe.removesuffix(" (deleted)"))
        guardian = Guardian.start()
        try:
            return cls._start(
                dlv_path,
                info,
                ["attach", str(pid)],
                args=[],
                sink=sink,
                reader=reader,
                mode="attach",
                guardian=guardian,
            )
        except BaseException:
            guardian.dismiss()  # _start stopped dlv (it released the program)
            raise

    @classmethod
    def connect(cls, address: str, binary: str | None = None, reader: str = "auto") -> Session:
        """A headless Delve at HOST:PORT, started with --accept-multiclient (else dlvsnap is
        its one client, and the session ends with dlvsnap's connection: ``single_client``).
        ``binary`` is the program's executable when it is not readable as /proc/PID/exe (a
        remote server). A malformed address is an AddressError (a ValueError)."""
        host, port = parse_address(address)
        try:
            conn = JsonRpcConnection(host, port)
        except DelveError as e:
            raise _amended(
                e,
                "is a Delve server listening there? One started without --accept-multiclient "
                "stops listening once its first client connects",
            ) from None
        multi = True
        try:
            client = DelveClient(conn)
            client.set_api_version(2)  # per connection; Delve's own `dlv connect` does it too
            version = client.get_version()
            # Without --accept-multiclient, Delve ends the session (kills a program it
            # launched, detaches one it attached to) when its one client disconnects,
            # however it does: refusing would end it too, so dlvsnap does the job and says so.
            multi = client.is_multiclient()
            try:
                st = client.state(non_blocking=True)
                status = st.exit_status if st.exited else None
            except RPCError as e:
                if (status := exited_with(e)) is None:
                    raise
            if status is not None:
                raise ProgramExitedError(
                    f"the program behind {address} {exit_words(status)}: nothing to watch or "
                    "read; `restart` it in your client and stop it where you want",
                    status,
                )
            if st.running:
                raise TargetError(
                    f"the program behind {address} is running: stop it first (a breakpoint, "
                    "or halt in your client); dlvsnap does not stop it for you"
                )
            pid = client.process_pid()
            info = identify(binary or _exe_of(pid))
            return cls(
                dlv=None,
                client=client,
                target=info,
                version=version,
                pid=pid,
                dlv_path="",
                reader=reader,
                mode="connect",
                guardian=Guardian.start() if multi else None,
                single_client=not multi,
            )
        except BaseException as e:
            conn.close()
            if not multi and isinstance(e, DlvsnapError):
                raise _amended(e, "and the single-client Delve session ended with it") from e
            raise

    @classmethod
    def core(
        cls,
        dlv_path: str | None,
        core: str | Path,
        binary: str | Path,
        reader: str = "auto",
        sink: BinaryIO | None = None,
    ) -> Session:
        """``dlv core BINARY CORE``: the program as the core file holds it, stopped for
        good. Memory is read from the core file (``reader`` "auto"), or through Delve
        ("delve", to compare); "proc" is a UsageError (no process to read). A file that
        is not an ELF core, or not one of ``binary``, is a TargetError before Delve starts."""
        if reader == "proc":
            raise UsageError(
                "--reader proc reads a running program's /proc/PID/mem: a core is read from "
                "its file (auto) or through Delve (delve)"
            )
        mem = CoreMem(core, binary)
        try:
            info = identify(binary)
            s = cls._start(
                dlv_path,
                info,
                ["core", str(binary), str(core)],
                args=[],
                sink=sink,
                reader=reader,
                mode="core",
            )
        except BaseException:
            mem.close()
            raise
        s.core_mem = mem
        return s

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
        guardian: Guardian | None = None,
    ) -> Session:
        if dlv_path is None:  # $DLVSNAP_DLV is an explicit choice, like --dlv
            dlv_path = os.environ.get("DLVSNAP_DLV") or pick_dlv(info.go_version) or default_dlv()
        # An attached program is released through a second connection when the first may
        # be mid-call (Ctrl-C), never by closing the socket (release.py).
        multi = ["--accept-multiclient"] if mode == "attach" else []
        try:
            dp = launch(
                dlv_path,
                mode_args,
                program_args=args,
                sink=sink,
                extra_flags=multi,
                outlive_us=mode == "attach",
            )
        except DelveRefusedError as e:
            raise _refusal(str(e), info) from e
        if guardian is not None:
            guardian.tell("dlv", dp.proc.pid)
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
                    raise _refusal(dp.error_summary(), info) from e
                raise
            dp.pass_output()
            pid = client.state().pid or client.process_pid()
            return cls(
                dlv=dp,
                client=client,
                target=info,
                version=version,
                pid=pid,
                dlv_path=dlv_path,
                reader=reader,
                mode=mode,
                guardian=guardian,
            )
        except BaseException:
            if client is not None:
                client.conn.close()
            dp.terminate()
            raise

    def exited(self) -> int | None:
        """The program's exit status if it has exited; None while it lives, and when Delve
        cannot say (a closed connection)."""
        try:
            return self.client.exit_status()
        except DelveError:
            return None

    def check_can_run(self, what: str = "run the program") -> None:
        """CoreCannotRunError when the program cannot run: a core file (``what`` is what
        was asked of it)."""
        if self.mode == "core":
            raise CoreCannotRunError(
                f"cannot {what}: the program is a core file, which cannot run; snap reads "
                "a map in it where it stopped"
            )

    def run_to_end(self) -> int:
        """Run the program, with none of dlvsnap's breakpoints and watchpoints left, until
        it exits (a stop of Delve's own on the way, an unrecovered panic's, is continued
        too); its exit status. Ctrl-C meanwhile ends the session as at any other time."""
        self.check_can_run()
        self.clear_owned_breakpoints()
        while True:
            try:
                st = self.client.command("continue")
            except RPCError as e:
                if (status := exited_with(e)) is None:
                    raise
                return status
            if st.exited:
                return st.exit_status

    def memory(self, probe_addr: int, probe_size: int) -> MemoryReader:
        """The memory reader for this session, chosen once: with "auto", /proc/PID/mem (a
        core: the core file) when it is readable and agrees with Delve on a probe, else
        ExamineMemory."""
        if self._reader is None:
            if self.reader_choice == "delve":
                self._reader = DelveMem(self.client)
            elif self.core_mem is not None:
                self._reader = _checked(self.core_mem, self.client, probe_addr, probe_size)
            elif self.reader_choice == "proc":
                self._reader = ProcMem(self.pid)
            else:
                self._reader = _choose_reader(self.client, self.pid, probe_addr, probe_size)
        return self._reader

    def read_word(self, addr: int) -> int:
        """The pointer-sized word at ``addr`` (a package variable's map pointer)."""
        t = self.target
        raw = self.memory(addr, t.ptr_size).read(addr, t.ptr_size)
        return int.from_bytes(raw, "little" if t.little_endian else "big")

    @property
    def memory_reader_name(self) -> str:
        return self._reader.name if self._reader is not None else "none"

    def close(self, interrupted: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_readers()
        if self.mode == "launch":
            self._close_launched(interrupted)
            return
        if self.mode == "core":
            self._close_core(interrupted)
            return
        # attach, connect: leave the program stopped without dlvsnap's breakpoints, and
        # (attach) detached, running. On Ctrl-C the connection may be mid-call: a new one.
        conn = self.client.conn
        released = False
        try:
            with contextlib.suppress(DlvsnapError, OSError):
                if (interrupted or conn.closed) and not self.single_client:
                    self._release_through(self._second_client())
                elif not conn.closed:
                    self._release_through(self.client)
                released = True
        finally:
            conn.close()
            if self.guardian is not None:
                if released:
                    self.guardian.dismiss()
                else:  # the guardian tries, and stops dlv if it cannot
                    with contextlib.suppress(OSError):
                        self.guardian.pipe.close()
                    with contextlib.suppress(Exception):
                        self.guardian.proc.wait(timeout=60.0)
            if self.dlv is not None:
                self.dlv.wait_exit(10.0)  # a released dlv exits on its own
                if released:
                    self.dlv.terminate()  # no-op for a dlv that exited; joins the output drains

    def _close_readers(self) -> None:
        if isinstance(self._reader, ProcMem):
            self._reader.close()
        if self.core_mem is not None:
            self.core_mem.close()

    def _second_client(self) -> DelveClient:
        c = DelveClient(
            JsonRpcConnection(self.client.conn.host, self.client.conn.port), default_timeout=10.0
        )
        c.set_api_version(2)
        return c

    def _release_through(self, c: DelveClient) -> None:
        """Release the program through ``c``, then close ``c``. A single-client server
        detaches an attached program itself when dlvsnap's connection closes: a stray
        SIGTRAP is consumed first there too."""
        try:
            release.release(
                c,
                self.bp_prefix,
                pid=self.pid,
                detach=self.mode == "attach",
                settle=self.mode == "attach" or self.single_client,
                halt=self._may_halt(),
            )
        finally:
            c.conn.close()

    def _may_halt(self) -> bool:
        """Whether leaving may halt a running program: always one dlvsnap launched or
        attached to; in someone else's server only when dlvsnap resumed the program or set
        breakpoints of its own. A program dlvsnap never resumed runs because another client
        resumed it (an editor's continue): a halt then fights that client, and under a DAP
        client (VS Code) it does not even return (Delve's DAP continue resumes after a halt
        it did not ask for, and holds the target until its own stop: docs/editors.md)."""
        return self.mode != "connect" or self.client.resumed or self._created

    def _close_launched(self, interrupted: bool) -> None:
        conn = self.client.conn
        assert self.dlv is not None
        if not interrupted and not conn.closed:
            with contextlib.suppress(DlvsnapError, OSError):
                self.client.detach(kill=True)
        conn.close()  # single-client Delve: ends the session and kills the target
        self.dlv.wait_exit(5.0)
        self.dlv.terminate()  # no-op for a dlv that exited; joins the output drains
        self._kill_target()

    def _close_core(self, interrupted: bool) -> None:
        """dlv gone; nothing else: the core's pid is not a process of this session's."""
        conn = self.client.conn
        assert self.dlv is not None
        if not interrupted and not conn.closed:
            with contextlib.suppress(DlvsnapError, OSError):
                self.client.detach(kill=False)
        conn.close()  # a single-client Delve exits when its client leaves
        self.dlv.wait_exit(5.0)
        self.dlv.terminate()  # no-op for a dlv that exited; joins the output drains

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
        """A breakpoint of dlvsnap's: named with the session's prefix (see ``owns``)."""
        self.check_can_run("set a breakpoint")
        name = f"{self.bp_prefix}{next(self._bp_names)}"
        self._created = True
        return self.client.create_breakpoint(dataclasses.replace(spec, name=name))

    def create_watchpoint(
        self,
        addr: int,
        ctype: str,
        variables: tuple[str, ...] = (),
        stacktrace: int = 0,
        goroutine: int = CURRENT_GOROUTINE,
    ) -> Breakpoint:
        """A write watchpoint of dlvsnap's on the ``ctype`` (``uint8``...) at ``addr``, with
        the variables and stack depth each trap returns. Delve names a watchpoint by its
        expression, which carries the session's prefix (release.owned): a SIGKILL between
        its creation and the amend that names it leaves nothing the clean-up misses. An
        address on ``goroutine``'s stack makes a stack watchpoint: Delve moves it when the
        stack is copied and removes it when the goroutine's topmost frame returns."""
        self.check_can_run("set a watchpoint")
        self._check_debug_registers()
        expr = release.watch_expr(addr, ctype, self.bp_prefix)
        self._created = True
        wp = self.client.create_watchpoint(expr, goroutine)
        raw = dict(wp.raw)
        raw["name"] = f"{self.bp_prefix}{next(self._bp_names)}"
        try:
            return self.client.amend_breakpoint(
                Breakpoint.from_json(raw), "", variables, stacktrace
            )
        except DlvsnapError:
            self.client.clear_breakpoint(wp.id)
            raise

    def _check_debug_registers(self) -> None:
        """Refuse (DelveError) a watchpoint that would land in x86's 4th debug register of a
        Delve that never reports its traps (``DR3_REPORTED_FROM``): the program would run
        through the watched writes, silently. Delve gives a new watchpoint the lowest free
        register, so with 3 watchpoints set (the user's too) the next one would be DR3."""
        v = self.version.numbers
        if self.target.goarch != "amd64" or not v or v >= DR3_REPORTED_FROM:
            return
        n = sum(1 for bp in self.client.list_breakpoints() if bp.raw.get("WatchType"))
        if n >= 3:
            raise DelveError(
                f"{n} watchpoints are set and Delve {self.version.short} never reports a "
                f"4th one's traps: fixed in Delve {'.'.join(map(str, DR3_REPORTED_FROM))}"
            )

    def owns(self, bp: Breakpoint | None) -> bool:
        """Whether dlvsnap created this breakpoint (by its name: ids are reused)."""
        return bp is not None and release.owned(bp.name, self.bp_prefix)

    def clear_owned_breakpoints(self) -> None:
        """Remove dlvsnap's breakpoints (only those); needs a stopped target."""
        if not self.client.conn.closed:
            release.clear_breakpoints(self.client, self.bp_prefix)

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Ctrl-C, SIGTERM: the connection may be mid-call, so do not talk to Delve again.
        self.close(interrupted=e is not None and not isinstance(e, Exception))


def _refusal(msg: str, info: TargetInfo) -> DelveRefusedError:
    """Delve's own words for refusing to start; when it refuses the target's Go release,
    with the `dlvsnap setup` command that installs a Delve that accepts it."""
    if "version of delve" in msg.lower():
        msg += f" ({setup_hint(info.go_version)})"
    return DelveRefusedError(msg)


def _amended(e: DlvsnapError, why: str) -> DlvsnapError:
    """The same error (and exit code), with a reason added."""
    out = DlvsnapError(f"{e} ({why})")
    out.exit_code = e.exit_code
    return out


def _choose_reader(client: DelveClient, pid: int, probe_addr: int, probe_size: int) -> MemoryReader:
    """/proc/PID/mem when it is readable and agrees with Delve on a probe; else Delve."""
    delve = DelveMem(client)
    try:
        proc = ProcMem(pid)
    except MemoryReadError:
        return delve
    if not _agrees(proc, delve, probe_addr, probe_size):
        proc.close()
        return delve
    return proc


def _checked(core: CoreMem, client: DelveClient, probe_addr: int, probe_size: int) -> MemoryReader:
    """The core file's reader when it agrees with Delve's reading of the core on a probe;
    else Delve's."""
    delve = DelveMem(client)
    return core if _agrees(core, delve, probe_addr, probe_size) else delve


def _agrees(reader: MemoryReader, delve: DelveMem, addr: int, size: int) -> bool:
    """Whether ``reader`` reads the probe as Delve does (False: either cannot read it)."""
    try:
        return reader.read(addr, size) == delve.read(addr, size)
    except MemoryReadError:
        return False


def _exe_of(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except OSError:
        raise TargetError(
            f"cannot read /proc/{pid}/exe (a remote Delve server?): pass the program's "
            "executable with --binary"
        ) from None
