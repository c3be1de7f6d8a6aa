"""``SessionCoordinator``: the lifecycle of a session, and backtests as sequences of sessions.

    start(session) -> add_symbol(...) -> load(...) / stream(...) / replay(...)
                   -> remove_symbol(...) at any time -> stop() -> summary

Everything it knows about symbols it asks ``SessionData``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from .api import default_calendar
from .bars import Bars
from .calendar import Calendar
from .export import export_session
from .intervals import parse_interval
from .processing import DataProcessor, DataQualityManager
from .session import SessionData


@dataclass
class SessionSummary:
    """What one session came to, per symbol and interval."""

    session: str
    symbols: int
    bars: int
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per symbol and interval

    @property
    def gaps(self) -> int:
        return sum(r["gaps"] for r in self.rows)

    @property
    def missing(self) -> int:
        return sum(r["missing"] for r in self.rows)


class SessionCoordinator:
    """Runs sessions of a calendar over a ``SessionData``.

    Parameters
    ----------
    calendar : Calendar, optional
        Defaults to ``Calendar.always()``.
    base_interval : str
        Base interval of the symbols added without one.
    derived_intervals : iterable of str
        Derived intervals of the symbols added without their own.
    on_bad : {"raise", "drop"}
        The bad-bar policy (see ``SessionData``).
    """

    def __init__(self, calendar: Calendar | None = None, *, base_interval: str = "1m",
                 derived_intervals: Iterable[str] = ("5m", "15m", "1h"),
                 on_bad: str = "raise"):
        self.calendar = default_calendar(calendar)
        self.base_interval = parse_interval(base_interval).name
        self.derived_intervals = [parse_interval(d).name for d in derived_intervals]
        self.session_data = SessionData(self.calendar, on_bad=on_bad)
        self.processor = DataProcessor(self.session_data)
        self.quality = DataQualityManager(self.session_data)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, session) -> SessionData:
        """Start a session (a trading date of the calendar)."""
        self.session_data.start_session(session)
        return self.session_data

    def add_symbol(self, symbol: str, base_interval: str | None = None,
                   derived_intervals: Iterable[str] | None = None):
        """Phase 1 of loading: register a symbol (idempotent; see ``SessionData.add_symbol``)."""
        return self.session_data.add_symbol(
            symbol, base_interval or self.base_interval,
            self.derived_intervals if derived_intervals is None else derived_intervals)

    def load(self, symbol: str, bars: Bars | Mapping | None = None, **columns) -> int:
        """Phase 2: load a batch of base bars (one compiled pass, derived bars included)."""
        return self.processor.process_bars(symbol, bars, **columns)

    def mark_loaded(self, symbol: str) -> None:
        """Phase 3: the symbol is loaded (its derived intervals are set since phase 1)."""
        self.session_data.mark_loaded(symbol)

    def add_and_load(self, symbol: str, bars: Bars | Mapping | None = None, *,
                     base_interval: str | None = None,
                     derived_intervals: Iterable[str] | None = None, **columns) -> int:
        """The three phases in one call."""
        self.add_symbol(symbol, base_interval, derived_intervals)
        n = self.load(symbol, bars, **columns)
        self.mark_loaded(symbol)
        return n

    def stream(self, symbol: str, ts: int, open: float, high: float, low: float,
               close: float, volume: float) -> int:
        """Stream one base bar (see ``SessionData.add_bar`` for the return value)."""
        return self.session_data.add_bar(symbol, ts, open, high, low, close, volume)

    def stream_bars(self, symbol: str, bars: Bars | Mapping | None = None, **columns) -> int:
        """Stream a batch of base bars (the same pipeline as bar by bar, in one call)."""
        return self.session_data.add_bars(symbol, bars, **columns)

    def replay(self, day: Mapping[str, Bars | Mapping], *, load: bool = True) -> int:
        """Replay a day's bars for many symbols: each is registered (if needed), its bars
        go through the pipeline in one compiled pass, and it is marked loaded.  Returns the
        number of bars stored."""
        total = 0
        for symbol, bars in day.items():
            self.add_symbol(symbol)
            total += self.load(symbol, bars)
            if load:
                self.mark_loaded(symbol)
        return total

    def remove_symbol(self, symbol: str) -> bool:
        """Remove a symbol in the middle of the session; its later bars are counted as
        unknown, never stored."""
        return self.session_data.remove_symbol(symbol)

    def get_loaded_symbols(self) -> list[str]:
        """Delegates to ``SessionData``."""
        return self.session_data.get_loaded_symbols()

    def get_active_symbols(self) -> list[str]:
        """Delegates to ``SessionData``."""
        return self.session_data.get_active_symbols()

    def stop(self, *, until_ns: int | None = None,
             since_ns: int | Mapping[str, int] | None = None,
             export_to: str | os.PathLike | None = None,
             csv_bars: bool = True) -> SessionSummary:
        """End the session: close the derived bars, compute gaps and quality of every
        interval (over the slots that closed by ``until_ns``, default the whole session, and
        that start at or after ``since_ns``, one instant or one per symbol), export (when
        ``export_to`` is given), clear the registry and return a summary."""
        sd = self.session_data
        if not sd.is_active:
            raise RuntimeError("no active session")
        if until_ns is None:
            self.processor.finish()
            # The whole session counts: without an explicit bound the quality manager would
            # fall back to the session clock (the last bar seen), and a feed that stopped
            # early would score 100 with its missing tail unreported.
            until_ns = int(sd.windows.close_ns[-1])
        else:
            sd.advance(until_ns)
        self.quality.calculate_all(until_ns, since_ns)
        summary = self.summary()
        if export_to is not None:
            export_session(sd, export_to, csv_bars=csv_bars)
        sd.end_session()
        return summary

    def summary(self) -> SessionSummary:
        """Per symbol and interval: bars, gaps, missing bars and quality, as last computed."""
        sd = self.session_data
        rows = []
        bars = 0
        for symbol in sd.get_active_symbols():
            entry = sd.get_symbol_data(symbol)
            if entry is None:
                continue
            bars += entry.bar_count()
            for name in entry.intervals():
                q = entry.quality.get(name)
                gaps = entry.bar_gaps.get(name, [])
                longest = max(gaps, key=lambda g: g.bar_count, default=None)
                rows.append({
                    "symbol": symbol, "interval": name, "bars": entry.bar_count(name),
                    "gaps": len(gaps), "missing": sum(g.bar_count for g in gaps),
                    "longest_gap": longest,
                    "expected": q.expected if q else 0,
                    "quality": q.score if q else float("nan"),
                    "rejected": sum(entry.rejected.values()),
                })
        return SessionSummary(str(sd.session), len(sd.get_active_symbols()), bars, rows)

    # -- backtests ------------------------------------------------------------------------

    def run_sessions(self, sessions: Iterable, bars_for: Callable[[np.datetime64],
                     Mapping[str, Bars | Mapping]], *, out_dir: str | os.PathLike | None = None,
                     until_ns: int | None = None, csv_bars: bool = True,
                     on_session: Callable[[SessionSummary], None] | None = None,
                     ) -> list[SessionSummary]:
        """A backtest: for each session label, start it, replay ``bars_for(session)``, stop,
        export to ``out_dir/<session>/`` and collect the summary.

        ``until_ns`` caps the last session (data that ends inside a session)."""
        summaries = []
        labels = list(sessions)
        for i, session in enumerate(labels):
            self.start(session)
            try:
                self.replay(bars_for(np.datetime64(session, "D")))
                cap = until_ns if i == len(labels) - 1 else None
                target = None if out_dir is None else Path(out_dir) / str(session)
                summary = self.stop(until_ns=cap, export_to=target, csv_bars=csv_bars)
            except BaseException:
                if self.session_data.is_active:
                    self.session_data.end_session()
                raise
            summaries.append(summary)
            if on_session is not None:
                on_session(summary)
        return summaries
