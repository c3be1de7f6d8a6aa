"""A live session as a result: what a live ``SessionData`` holds at an instant, as the one
results model (:class:`~sessiondata.results.RunResult`, one session), classified like a run.

Beside the live registry (``session``), which calls it; it reads the registry's entries by
their public attributes and imports neither ``session`` nor any reader of the model but the
gap kinds' pass, so that the model stays free of both.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Sequence

import numpy as np

from .classify import classify_run
from .documents import session_doc
from .results import (
    NO_BOUND_HI,
    NO_BOUND_LO,
    GapInfo,
    Gaps,
    RunResult,
    SymbolResult,
)

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def live_result(session_data: Any, entries: Sequence[Any] | None = None) -> RunResult:
    """The result of a live ``SessionData`` (its active session), from what its entries hold:
    the bars held, the gaps and quality as last computed, the scored span."""
    sd = session_data
    windows = sd.windows
    if windows is None:
        raise RuntimeError("no active session")
    if entries is None:
        entries = [e for e in map(sd.get_symbol_data, sd.get_active_symbols()) if e is not None]
    unknown = sd.unknown_bars
    parts = []
    one = np.ones(1, bool)
    for e in entries:
        counts: dict[str, np.ndarray] = {}
        gaps: dict[str, tuple[np.ndarray, ...]] = {}
        unscored: set[str] = set()
        for name in e.intervals():
            q = e.quality.get(name)
            table = np.zeros((5, 1), np.float64)
            table[SymbolResult.BARS] = e.bar_count(name)
            if q is None:
                unscored.add(name)
            else:
                table[1:, 0] = (q.expected, q.present, q.partial, q.coverage_sum)
            counts[name] = table
            g = e.bar_gaps.get(name, ())
            if not isinstance(g, Gaps):
                g = _gaps_of(list(g))
            gaps[name] = (np.zeros(len(g), np.int64), g.start_ns, g.end_ns, g.bar_count)
        since, until = e.scored_span
        parts.append(SymbolResult(
            e.symbol, one, np.array([NO_BOUND_LO if since is None else since], np.int64),
            np.array([NO_BOUND_HI if until is None else until], np.int64), counts, gaps,
            {}, {0: dict(e.rejected)} if e.rejected else {}, np.array([e.is_loaded]),
            list(e.derived_intervals), windows.sessions, e.base_interval, unscored))
    base = parts[0].base if parts else "1m"
    derived: list[str] = []    # every derived interval of some symbol, in order
    for p in parts:
        derived += [d for d in (p.derived or []) if d not in derived]
    run = RunResult.assemble(sd.calendar, windows, base or "1m", derived, parts)
    run.unknown = [dict(unknown)]
    return classify_run(run)  # the gap kinds, with this one session as history


def _gaps_of(infos: list[GapInfo]) -> Gaps:
    """Gaps from ``GapInfo`` objects."""
    def ns(t: _dt.datetime) -> int:
        return ((t - _EPOCH) // _dt.timedelta(microseconds=1)) * 1000

    return Gaps(np.array([ns(g.start_time) for g in infos], np.int64),
                np.array([ns(g.end_time) for g in infos], np.int64),
                np.array([g.bar_count for g in infos], np.int64))


def live_doc(session_data: Any, entries: Sequence[Any] | None = None) -> dict[str, Any]:
    """The session document of a live ``SessionData`` (of ``entries`` only, when given)."""
    return session_doc(live_result(session_data, entries), 0)
