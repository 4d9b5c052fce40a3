"""A minimal progress indicator on stderr (no third-party dependency).

On a terminal the line is redrawn in place at most every 0.1 s; elsewhere
(logs, CI) only the final line of each phase is printed.
"""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

__all__ = ["Progress"]


def _human(value: float, unit: str) -> str:
    if unit == "B":
        for prefix in ("B", "KB", "MB", "GB", "TB"):
            if abs(value) < 1000 or prefix == "TB":
                return f"{value:.1f} {prefix}" if prefix != "B" else f"{value:.0f} B"
            value /= 1000.0
    if value >= 10_000:
        return f"{value / 1000:.1f}k {unit}"
    return f"{value:.0f} {unit}"


class Progress:
    """Progress of one phase: ``update(n)`` as work is done, ``close()`` at the end.

    ``unit="B"`` shows sizes and MB/s; any other unit is shown as items/s.
    With ``total`` a percentage is shown too. Disabled (``enabled=False``) it
    costs next to nothing and prints nothing. Usable as a context manager.
    """

    def __init__(
        self,
        description: str,
        total: Optional[float] = None,
        unit: str = "items",
        enabled: bool = True,
        stream: Optional[TextIO] = None,
    ) -> None:
        self.description = description
        self.total = total
        self.unit = unit
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0.0
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._closed = False
        try:
            self._interactive = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            self._interactive = False

    def update(self, amount: float = 1) -> None:
        """Record ``amount`` more units of work."""
        self.done += amount
        if self.enabled and self._interactive:
            now = time.perf_counter()
            if now - self._last_draw >= 0.1:
                self._last_draw = now
                self._draw(end="\r")

    def _line(self) -> str:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = self.done / elapsed
        parts = [f"{self.description}:"]
        if self.total:
            parts.append(f"{100.0 * min(self.done / self.total, 1.0):5.1f}%")
        parts.append(_human(self.done, self.unit))
        parts.append(f"in {elapsed:.1f} s")
        parts.append(f"({_human(rate, self.unit)}/s)")
        return " ".join(parts)

    def _draw(self, end: str) -> None:
        try:
            self.stream.write("\x1b[2K" + self._line() + end if self._interactive else self._line() + end)
            self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False

    def close(self) -> None:
        """Print the final line of the phase (once)."""
        if self.enabled and not self._closed:
            self._draw(end="\n")
        self._closed = True

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
