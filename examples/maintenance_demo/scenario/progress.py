"""A drain progress bar that redraws in a terminal and prints one line per change elsewhere."""

from __future__ import annotations

import sys
from typing import TextIO


class DrainBar:
    """``[#######-----] 2 still running``: the most seen at once down to zero."""

    def __init__(self, label: str, out: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.out = out or sys.stdout
        self.width = width
        self.total = 0
        self.last: int | None = None
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())

    def update(self, running: int) -> None:
        """Show that ``running`` jobs are left."""
        self.total = max(self.total, running, 1)
        if running == self.last:
            return
        self.last = running
        filled = round(self.width * (self.total - running) / self.total)
        line = (
            f"  {self.label} [{'#' * filled}{'-' * (self.width - filled)}] {running} still running"
        )
        if self.tty:
            self.out.write("\r" + line)
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.tty and self.last is not None:
            self.out.write("\n")
            self.out.flush()
