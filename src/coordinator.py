"""``SessionCoordinator``: the lifecycle of a session, and backtests as sequences of sessions.

    start(session) -> add_symbol(...) -> load(...) / stream(...) / replay(...)
                   -> remove_symbol(...) at any time -> stop() -> summary

Everything it knows about symbols it asks ``SessionData``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from .bars import Bars
from .calendar import Calendar
from .engine import Engine
from .export import export_run, run_export
from .kernels import cut_grid, default_calendar, edge_coverage
from .intervals import parse_interval
from .processing import DataProcessor, DataQualityManager
from .summary import SessionSummary, Summary
from .session import Event, SessionData


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
    on_bad : {"raise", "drop", "revise"}
        The bad-bar policy (see ``SessionData``; ``revise`` applies to streamed bars).
    stale_after, gap_grace : int
        Slots of the live events (see ``SessionData`` and ``subscribe``).
    """

    def __init__(self, calendar: Calendar | None = None, *, base_interval: str = "1m",
                 derived_intervals: Iterable[str] = ("5m", "15m", "1h"),
                 on_bad: str = "raise", stale_after: int = 5, gap_grace: int = 1):
        self.calendar = default_calendar(calendar)
        self.base_interval = parse_interval(base_interval).name
        self.derived_intervals = [parse_interval(d).name for d in derived_intervals]
        self.session_data = SessionData(self.calendar, on_bad=on_bad, stale_after=stale_after,
                                        gap_grace=gap_grace)
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

    def advance(self, now_ns: int) -> int:
        """Move the session's clock (see ``SessionData.advance``): derived bars close, and
        the subscribers hear of the slots that ended without a bar."""
        return self.session_data.advance(now_ns)

    def subscribe(self, callback: Callable[[Event], Any], kinds: Iterable[str] | None = None,
                  *, errors: str = "collect",
                  intervals: Iterable[str] | None = None) -> Callable[[Event], Any]:
        """Live events of the session (see ``SessionData.subscribe``); the subscription
        outlives ``stop()`` and holds for the next session."""
        return self.session_data.subscribe(callback, kinds, errors=errors, intervals=intervals)

    def unsubscribe(self, callback: Callable[[Event], Any]) -> bool:
        """See ``SessionData.unsubscribe``."""
        return self.session_data.unsubscribe(callback)

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
             fmt: str = "parquet") -> SessionSummary:
        """End the session: close the derived bars, compute gaps and quality of every
        interval over the span ``[since_ns, until_ns)`` (default the whole session;
        ``since_ns`` is one instant or one per symbol; a bucket cut by the span counts its
        bars over its slots inside it), export (when ``export_to`` is given: the session
        document, the bars and the gaps, see ``export``), clear the registry and return a
        summary."""
        sd = self.session_data
        if not sd.is_active or sd.windows is None:
            raise RuntimeError("no active session")
        # The session is over: every bucket closes, a partial one counts over its slots
        # inside the span.  The whole session counts unless until_ns says otherwise (the
        # session clock, the last bar seen, would let a feed that stopped early score 100).
        if until_ns is None:
            until_ns = int(sd.windows.close_ns[-1])
        self.processor.finish(until_ns=until_ns)
        self.quality.calculate_all(until_ns, since_ns)
        result = sd.result()
        summary = Summary(result).session(0)
        if export_to is not None:
            export_run(result, export_to, fmt=fmt, bars=self._bars_held(since_ns, until_ns))
        sd.end_session()
        return summary

    def _bars_held(self, since_ns: int | Mapping[str, int] | None,
                   until_ns: int | None) -> dict[str, dict[str, Bars]]:
        """Every symbol's bars per interval, with the coverage of buckets cut by the scored
        span counted over their slots inside it (as the scores count them)."""
        sd = self.session_data
        assert sd.windows is not None
        out: dict[str, dict[str, Bars]] = {}
        for symbol in sd.get_active_symbols():
            entry = sd.get_symbol_data(symbol)
            if entry is None:
                continue
            since = since_ns.get(symbol) if isinstance(since_ns, Mapping) else since_ns
            held = {}
            for name in entry.intervals():
                bars = entry.bars(name)
                if bars.coverage is not None and bars.count is not None and len(bars):
                    grid = cut_grid(sd.grid(name, entry.base_interval), sd.windows, since,
                                    until_ns)
                    cov = edge_coverage(bars.ts, bars.count, bars.coverage, grid)
                    if cov is not bars.coverage:
                        bars = bars.with_coverage(cov)
                held[name] = bars
            out[symbol] = held
        return out

    def summary(self) -> SessionSummary:
        """Per symbol and interval: bars, gaps, missing bars and quality, as last computed."""
        return Summary(self.session_data.result()).session(0)

    # -- backtests ------------------------------------------------------------------------

    def run_sessions(self, sessions: Iterable, bars_for: Callable[[np.datetime64],
                     Mapping[str, Bars]], *, out_dir: str | os.PathLike | None = None,
                     until_ns: int | None = None, fmt: str = "parquet",
                     on_session: Callable[[SessionSummary], None] | None = None,
                     ) -> list[SessionSummary]:
        """A backtest over the sessions given: ``bars_for(session)`` gives each session's
        bars per symbol; the engine runs them all (derived bars, gaps, quality per session,
        scored from the data's first bar to ``until_ns`` or the end of its last one) and,
        with ``out_dir``, exports the run there.  Returns a summary per session.

        The registry is not used: the engine works on the whole range at once, which is
        what a replay of finished days wants.  Stream into a session (``start``,
        ``stream``, ``stop``) to hold bars in the registry.
        """
        if self.session_data.is_active:
            raise RuntimeError("a session is active; stop it before running a backtest")
        labels = [np.datetime64(s, "D") for s in sessions]
        if not labels:
            return []
        # Under the revise policy a late or repeated bar corrects its slot: over finished
        # days that is the bars in time order, the last of a repeated slot kept; the other
        # bad bars are dropped and counted, as revise does.
        revise = self.session_data.on_bad == "revise"
        per_symbol: dict[str, list[Bars]] = {}
        for label in labels:
            for symbol, bars in bars_for(label).items():
                b = bars if isinstance(bars, Bars) else Bars.from_dict(dict(bars),
                                                                      validate=not revise)
                if len(b):
                    per_symbol.setdefault(symbol, []).append(b)
        data = {s: _concat(parts, in_order=revise) for s, parts in per_symbol.items()}
        if not data:  # nothing to run: every session is empty
            empty = [SessionSummary(str(label), 0, 0, []) for label in labels]
            if on_session is not None:
                for summary in empty:
                    on_session(summary)
            return empty
        engine = Engine(self.calendar, base=self.base_interval, derived=self.derived_intervals,
                        on_bad="drop" if revise else self.session_data.on_bad,
                        start=min(labels), end=max(labels))
        span = None
        if until_ns is not None:
            first = min(int(b.ts[0]) for b in data.values())
            span = (first, int(until_ns) - engine.base.ns)
        if out_dir is not None:
            result = run_export(engine, data, out_dir, fmt=fmt, span=span)
        else:
            result = engine.run(data, span=span)
        total = Summary(result)
        summaries = [total.session(k) for k in range(len(result.sessions))]
        if on_session is not None:
            for summary in summaries:
                on_session(summary)
        return summaries


def _concat(parts: list[Bars], in_order: bool = False) -> Bars:
    """One symbol's bars of several days; ``in_order`` sorts them by time and keeps the last
    bar given for a repeated slot (the revise policy over finished days)."""
    if not in_order:
        return Bars.concat(parts, validate=len(parts) > 1)
    bars = Bars.concat(parts)
    order = np.argsort(bars.ts, kind="stable")
    last = np.r_[bars.ts[order][1:] != bars.ts[order][:-1], True]   # the last of equal times
    return bars.take(order[last])
