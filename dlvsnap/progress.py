"""Progress on long work (building, starting Delve, reading a large map, a long watch): one
status line on stderr, rewritten in place, only when stderr is a terminal and the output
is not JSON. Whatever else is printed first clears it (``clear``)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from dlvsnap.untrusted import visible


class Progress:
    def __init__(self, enabled: bool, stream: TextIO | None = None, every: float = 0.1) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.every = every  # seconds between two updates of a busy status
        self._shown = False
        self._last = 0.0

    @classmethod
    def for_terminal(cls, json_output: bool) -> Progress:
        return cls(enabled=not json_output and sys.stderr.isatty())

    def status(self, message: str, *, force: bool = True) -> None:
        """Show ``message`` as the status line (at most every ``every`` s unless forced)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.every:
            return
        self._last = now
        # a type or file name may come from the program: never a raw escape sequence
        self.stream.write("\r\x1b[K" + visible(message[:200]))
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
