"""The components that work on ``SessionData``: ``DataProcessor`` (derived bars) and
``DataQualityManager`` (gaps and quality).  Neither keeps any record of symbols: each call asks
the registry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import numpy as np

from .api import gap_infos, gaps_on_grid, score_on_grid, trim_grid
from .bars import Bars
from .intervals import parse_interval

if TYPE_CHECKING:  # pragma: no cover
    from .session import SessionData


class DataProcessor:
    """Turns base bars into derived bars for the symbols of a ``SessionData``.

    Derived bars are made by the compiled per-symbol pipeline as base bars arrive (the
    incremental kernel), or in one compiled pass over a batch when a symbol is loaded.
    """

    def __init__(self, session_data: "SessionData"):
        self.session_data = session_data

    def process_bar(self, symbol: str, ts: int, open: float, high: float, low: float,
                    close: float, volume: float) -> int:
        """One streaming base bar; see ``SessionData.add_bar``."""
        return self.session_data.add_bar(symbol, ts, open, high, low, close, volume)

    def process_bars(self, symbol: str, bars: Bars | dict | None = None, **columns) -> int:
        """A batch of base bars; see ``SessionData.add_bars``."""
        return self.session_data.add_bars(symbol, bars, **columns)

    def _process_bar_data(self, symbol: str, interval: str) -> int:
        """Bring the derived bars of ``symbol`` up to date after bars of ``interval`` arrived.

        A symbol that was removed (or never added) is skipped quietly.  For a base-interval
        bar, every derived interval of the symbol (as ``SessionData`` has them) closes the
        buckets that ended by the session clock.  Returns how many derived bars closed.
        """
        sd = self.session_data
        entry = sd.get_symbol_data(symbol)
        if entry is None:
            return 0
        if parse_interval(interval).name != entry.base_interval:
            return 0
        if not sd.get_derived_intervals(symbol):
            return 0
        clock = sd.clock_ns
        if clock is None:
            return 0
        with sd._lock:
            if sd._symbols.get(symbol) is not entry:  # removed meanwhile
                return 0
            return entry._stream.advance(clock)

    def finish(self, symbol: str | None = None) -> int:
        """Close every derived bar being built (the end of the session), for one symbol or
        all.  Returns how many closed."""
        sd = self.session_data
        with sd._lock:
            entries = (list(sd._symbols.values()) if symbol is None
                       else [e for e in (sd._symbols.get(symbol),) if e is not None])
            return sum(e._stream.flush() for e in entries)


class DataQualityManager:
    """Finds the gaps and scores the quality of every interval of the session's symbols and
    stores both in ``SessionData``."""

    def __init__(self, session_data: "SessionData"):
        self.session_data = session_data

    def _calculate_quality(self, symbol: str, interval: str, until_ns: int | None = None,
                           since_ns: int | None = None):
        """Compute gaps and quality of one interval of one symbol and store both.

        Only slots that closed by ``until_ns`` count (default: the session clock while the
        session runs), and, with ``since_ns``, only slots that start at or after it (data that
        starts inside the session, a symbol added mid-session).  A symbol that was removed is
        skipped (returns None).
        """
        sd = self.session_data
        entry = sd.get_symbol_data(symbol)
        if entry is None:
            return None
        name = parse_interval(interval).name
        if until_ns is None:
            until_ns = sd.clock_ns if sd.clock_ns is not None else None
        if until_ns is not None:
            with sd._lock:  # buckets that ended by then close before they are scored
                entry._stream.advance(until_ns)
        try:
            bars = entry.bars(name)
        except KeyError:
            return None
        grid = sd.grid(name, entry.base_interval)
        if since_ns is not None:
            grid = trim_grid(grid, int(since_ns))
            first = (int(np.searchsorted(bars.ts, grid.open_ns[0])) if len(grid.open_ns)
                     else len(bars))
            bars = bars[first:]
        gaps = gaps_on_grid(bars.ts, grid, until_ns)
        report = score_on_grid(bars, grid, name, until_ns, entry.rejected)
        sd.set_gaps(symbol, name, gap_infos(gaps, sd.calendar.tz))
        sd.set_quality(symbol, name, report)
        return report

    def calculate_all(self, until_ns: int | None = None,
                      since_ns: int | Mapping[str, int] | None = None) -> int:
        """Gaps and quality for every interval of every symbol; returns how many intervals.

        ``since_ns`` is one instant for all symbols or a mapping of symbol to instant.
        """
        sd = self.session_data
        done = 0
        for symbol in sd.get_active_symbols():
            entry = sd.get_symbol_data(symbol)
            if entry is None:
                continue
            since = since_ns.get(symbol) if isinstance(since_ns, Mapping) else since_ns
            for name in entry.intervals():
                if self._calculate_quality(symbol, name, until_ns, since) is not None:
                    done += 1
        return done
