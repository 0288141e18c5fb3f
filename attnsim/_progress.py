"""Progress of long work, on a terminal and off it.

On a terminal (or in a notebook) a tqdm bar. Off one — stderr redirected to a file, a
batch job, CI — a line at most every `EVERY` seconds and one at the end, so that a log
shows the work moving without a line per step. Like tqdm, this writes to stderr
itself; it is the only place the library does.
"""

from __future__ import annotations

import sys
import time

EVERY = 10.0  # seconds between progress lines off a terminal


def interactive() -> bool:
    """Whether progress goes to a terminal (or a notebook) as a bar."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class _Lines:
    """A progress counter that writes one line every `EVERY` seconds and at the end."""

    def __init__(self, total, desc, unit):
        self.total, self.desc, self.unit = total, desc, unit
        self.n = 0.0
        self.t0 = self.last = time.monotonic()
        self.shown = None  # the count of the last line written

    def update(self, n=1):
        self.n += n
        now = time.monotonic()
        if now - self.last >= EVERY and self.n != self.shown:  # a line when the count has moved
            self.last = now
            self._line(now)

    def set_description(self, desc):
        self.desc = desc

    def _line(self, now, end=False):
        done, total = self.n, self.total
        elapsed = now - self.t0
        whole = int(done + 1e-9)  # counted down, not rounded: 15.6 of 16 runs is not "16/16"
        if self.unit == "%":
            parts = [f"{whole} % done"]
        else:
            parts = [f"{whole:,}/{total:,.0f} {self.unit}" if total else f"{whole:,} {self.unit}"]
            if total:
                parts[0] += f" ({int(100 * done / total + 1e-9)} %)"
        parts.append(f"{_clock(elapsed)} elapsed")
        if total and 0.05 * total <= done < total and not end:  # an estimate only once there is something to go on
            parts.append(f"about {_clock(elapsed * (total - done) / done)} left")
        sys.stderr.write(f"attnsim: {self.desc}: {', '.join(parts)}\n")
        sys.stderr.flush()
        self.shown = done

    def close(self):
        # short work needs no closing line, nor work whose last line already says where it ended
        if time.monotonic() - self.t0 >= EVERY and self.shown != self.n:
            self._line(time.monotonic(), end=True)


class _Silent:
    def update(self, n=1):
        pass

    def set_description(self, desc):
        pass

    def close(self):
        pass


class _Callback(_Silent):
    def __init__(self, fn):
        self.update = fn


def progress(total, enabled, desc: str, unit: str, leave: bool = True, position: int | None = None, bar_format=None):
    """A counter with ``update(n)`` and ``close()``: silent when ``enabled`` is false; a
    call of ``enabled(n)`` per update when it is a callable (a caller's own progress);
    otherwise a tqdm bar on a terminal, lines off one."""
    if callable(enabled):
        return _Callback(enabled)
    if not enabled:
        return _Silent()
    if not interactive():
        return _Lines(total, desc, unit)
    from tqdm.auto import tqdm

    return tqdm(
        total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=leave, position=position, bar_format=bar_format
    )
