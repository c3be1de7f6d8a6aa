"""The components that work on ``SessionData``: ``DataProcessor`` (derived bars) and
``DataQualityManager`` (gaps and quality).  Neither keeps any record of symbols: each call asks
the registry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from .kernels import cut_grid, edge_coverage, gaps_on_grid, score_on_grid
from .results import Gaps, QualityReport
from .bars import Bars
from .intervals import parse_interval

if TYPE_CHECKING:  # pragma: no cover
    from .session import SessionData, SymbolSessionData


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

    def process_bars(self, symbol: str, bars: Bars | Mapping[str, Any] | None = None,
                     **columns: Any) -> int:
        """A batch of base bars; see ``SessionData.add_bars``."""
        return self.session_data.add_bars(symbol, bars, **columns)

    def _process_bar_data(self, symbol: str, interval: str) -> int:
        """Report the derived bars made from the latest bars of ``interval``.

        Derived bars are made by the compiled pipeline as each base bar arrives, for the
        symbol's ``derived_intervals`` as ``SessionData`` holds them; this returns how many
        the latest base bar closed.  A symbol that was removed (or never added) is skipped
        quietly (0); so is an interval that is not the symbol's base.  Nothing is moved by
        a clock here, so a symbol whose feed lags the others never has its bars made late.
        """
        sd = self.session_data
        entry = sd.get_symbol_data(symbol)
        if entry is None or parse_interval(interval).name != entry.base_interval:
            return 0
        return sd.last_closed(symbol) if entry.derived_intervals else 0

    def finish(self, symbol: str | None = None, until_ns: int | None = None) -> int:
        """Close every derived bar being built (the end of the session), for one symbol or
        all, and close the gap events up to ``until_ns`` (default: the session's close;
        see ``SessionData.finish``).  Returns how many derived bars closed."""
        return self.session_data.finish(symbol, until_ns)


class DataQualityManager:
    """Finds the gaps and scores the quality of every interval of the session's symbols and
    stores both in ``SessionData``."""

    def __init__(self, session_data: "SessionData"):
        self.session_data = session_data

    def _calculate_quality(self, symbol: str, interval: str, until_ns: int | None = None,
                           since_ns: int | None = None) -> QualityReport | None:
        """Compute gaps and quality of one interval of one symbol and store both.

        Only slots that closed by ``until_ns`` count (default: the session clock while the
        session runs), and, with ``since_ns``, only slots that start at or after it (data that
        starts inside the session, a symbol added mid-session).  A symbol that was removed is
        skipped (returns None), and so is one removed while this ran: the results are stored
        on the entry that was read, only while it is still the registered one.
        """
        sd = self.session_data
        entry = sd.get_symbol_data(symbol)
        if entry is None:
            return None
        name = parse_interval(interval).name
        if until_ns is None:
            until_ns = sd.clock_ns if sd.clock_ns is not None else None
        try:
            scored = self._score(entry, name, until_ns, since_ns)
        except RuntimeError:
            # The session ended meanwhile (the entry's buffers went to another session):
            # a symbol gone from the registry is skipped quietly, as a removed one is.
            if sd.get_symbol_data(symbol) is not entry:
                return None
            raise
        if scored is None:  # not an interval of this symbol
            return None
        gaps, report = scored
        # Stored on the entry that was read, and only while it is still the registered one:
        # a symbol removed (and maybe added again) meanwhile gets nothing of the old bars.
        if not sd.store_scores(entry, name, gaps, report,
                                (since_ns, until_ns)):
            return None
        return report

    def _score(self, entry: "SymbolSessionData", name: str, until_ns: int | None,
               since_ns: int | None) -> tuple[Gaps, QualityReport] | None:
        """Gaps and quality of one interval of ``entry`` over ``[since_ns, until_ns)`` by the
        rule of ``grid.bound_grid`` (nothing is stored); None when the entry has no such
        interval."""
        sd = self.session_data
        try:
            # A derived bar still being built counts as it is, without closing it, over the
            # slots that closed by until_ns: a feed that lags the clock can still complete it.
            bars = entry.bars_until(name, until_ns)
        except KeyError:
            return None
        grid = sd.grid(name, entry.base_interval)
        if since_ns is not None or until_ns is not None:
            assert sd.windows is not None
            grid = cut_grid(grid, sd.windows, since_ns, until_ns)
            lo = int(np.searchsorted(bars.ts, grid.open_ns[0])) if len(grid.open_ns) else 0
            hi = (int(np.searchsorted(bars.ts, until_ns - grid.base_ns, side="right"))
                  if until_ns is not None else len(bars))
            bars = bars[lo:max(lo, hi)]
            if bars.coverage is not None and bars.count is not None and grid.is_cut:
                coverage = edge_coverage(bars.ts, bars.count, bars.coverage, grid)
                if coverage is not bars.coverage:
                    bars = Bars(bars.ts, bars.open, bars.high, bars.low, bars.close,
                                bars.volume, count=bars.count, coverage=coverage,
                                interval=bars.interval, validate=False)
        gaps = gaps_on_grid(bars.ts, grid, sd.calendar.tz)
        report = score_on_grid(bars, grid, name, None, entry.rejected)
        return gaps, report

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
