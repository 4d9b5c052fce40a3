"""Progress bars on stderr: one tqdm style for every pass, phase and command.

Every progress display of the package goes through :func:`progress_bar`, so
that all of them look the same: the phase name, the amount done (bytes with
SI prefixes by default), the rate and, when the total is known, the
percentage and ETA. On a terminal the bar is redrawn in place; elsewhere
(logs, CI) it is drawn only when it starts and when it ends, so a log holds
the phase's final line rather than one line per redraw.
"""
from __future__ import annotations

import sys
from typing import Optional

__all__ = ["progress_bar", "log"]


def _interactive() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(desc: str, total: Optional[float] = None, unit: str = "B", enabled: bool = True):
    """A tqdm bar on stderr for one phase; ``update(n)`` as work is done.

    ``unit="B"`` counts bytes (shown as kB, MB, ... and MB/s); any other unit
    counts items (e.g. ``"rounds"``). ``enabled=False`` (``--quiet``,
    ``verbose=False``) prints nothing. Use it as a context manager or call
    ``close()``.
    """
    from tqdm import tqdm

    interactive = _interactive()
    scaled = unit == "B"
    return tqdm(desc=desc, total=total or None, unit=unit if scaled else " " + unit, unit_scale=scaled,
                unit_divisor=1000,
                file=sys.stderr, disable=not enabled, dynamic_ncols=True, leave=True,
                mininterval=0.1 if interactive else float("inf"))


def log(message: str) -> None:
    """One line of a phase's report on stderr, printed above any open bar."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)
