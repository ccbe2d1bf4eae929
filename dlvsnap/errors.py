"""dlvsnap's error types and the exit codes the CLI maps them to.

Every error a user can cause or meet carries a one-line message and an exit code; the CLI
prints ``dlvsnap: <message>`` and exits with that code. The codes are documented in
README.md ("Exit codes") and are part of the command-line contract.
"""

from __future__ import annotations

from enum import IntEnum

from dlvsnap.untrusted import visible


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1  # a bug in dlvsnap: please report it
    USAGE = 2  # bad command line (click's own code)
    MAP = 3  # --map names no variable, not a map, or a nil map
    NO_DELETES = 4  # the program exited before any delete from the watched map
    TARGET = 5  # cannot build or read the target: no debug info, unsupported map layout
    DELVE = 6  # dlv missing, refusing the target's Go version, or failing
    DRIFT = 7  # `layouts verify`: a layout differs from the binary's DWARF
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


class DlvsnapError(Exception):
    """Base class: a failure with a one-line message for the user."""

    def __str__(self) -> str:
        # messages quote files and programs (a key, a file name, a saved file's fields): one
        # line, without a control or bidi character raw, wherever they are printed
        return visible(super().__str__())

    exit_code: ExitCode = ExitCode.INTERNAL


class UsageError(DlvsnapError):
    """A bad command line that only the target can tell (--map that does not parse, an
    --in function the binary does not have)."""

    exit_code = ExitCode.USAGE


class CoreCannotRunError(UsageError):
    """Something that would run the program (a breakpoint, a continue, a watch) asked of a
    core file: Delve refuses it ("can not continue execution of core process", "cannot
    write a breakpoint to a core file"), and dlvsnap says why in its own words."""


class MapResolutionError(DlvsnapError):
    exit_code = ExitCode.MAP


class NoDeletesError(DlvsnapError):
    exit_code = ExitCode.NO_DELETES


class TargetError(DlvsnapError):
    exit_code = ExitCode.TARGET


class ProgramExitedError(TargetError):
    """The program has exited: there is no map to read, nothing to watch (``--connect`` to
    a server whose program ended; the Python API after a watch ran to the end)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status  # the exit status Delve reports (minus a killing signal)


class LayoutError(TargetError):
    """No layout fits the target, or bytes do not decode under the chosen layout."""


class SnapshotFileError(TargetError):
    """A saved snapshot that cannot be read, is cut short, or no longer decodes the same."""


class LayoutDriftError(LayoutError):
    """The layout dlvsnap would use differs from the binary's own DWARF types."""

    exit_code = ExitCode.DRIFT


class MemoryReadError(DlvsnapError):
    exit_code = ExitCode.TARGET


class DelveError(DlvsnapError):
    exit_code = ExitCode.DELVE


class DelveNotFoundError(DelveError):
    pass


class DelveRefusedError(DelveError):
    """Delve exited at start-up, for example refusing the target's Go version."""


class RPCError(DelveError):
    """Delve answered a request with an error string."""

    def __init__(self, method: str, message: str) -> None:
        super().__init__(f"{method}: {message}")
        self.method = method
        self.message = message


class RPCTimeoutError(DelveError):
    pass


class ConnectionClosedError(DelveError):
    pass


class ProtocolError(DelveError):
    """The peer answered something that is not Delve's JSON-RPC: not JSON, no request id,
    or a reply over the size cap. The connection is closed."""


class AddressError(UsageError, ValueError):
    """A Delve server's address that is not HOST:PORT or [IPv6]:PORT with a port in 1-65535
    (a bad command line; in the Python API, a ValueError)."""


def attach_permission_error(pid: int) -> TargetError:
    """``--attach PID`` of a process that exists but /proc/PID/exe is not readable: say so,
    and what ptrace would need (Yama's kernel.yama.ptrace_scope, when it is there)."""
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            scope = int(f.read().strip())
    except (OSError, ValueError):
        scope = 0
    need = {
        0: "run dlvsnap as its user, or as root (CAP_SYS_PTRACE)",
        1: "attaching needs root (CAP_SYS_PTRACE): kernel.yama.ptrace_scope is 1",
        2: "attaching needs root (CAP_SYS_PTRACE): kernel.yama.ptrace_scope is 2",
    }.get(scope, f"kernel.yama.ptrace_scope is {scope}: no process may be attached to")
    return TargetError(
        f"cannot attach to process {pid}: permission denied reading /proc/{pid}/exe (it runs as "
        f"another user, or is not dumpable); {need}"
    )
