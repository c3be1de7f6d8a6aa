"""Universes of 1m bars with known truth, to measure how well the gap kinds are told apart.

:func:`universe` draws, with a seed, a universe of symbols over weekday sessions of New
York's regular hours (390 one-minute slots) and records why every missing bar is missing:

- quiet minutes (``no_trade``): each slot is empty with a probability that depends on the
  symbol (70% liquid, missing 0.2%-3% of minutes; 30% thin, missing 15%-50%), on the time of
  day (a U-shaped day: busy at the open and the close, quiet at midday) and on the day (one
  session in twenty is a thin day, like a holiday, where every symbol is three times quieter);
- ``outage``: a vendor outage across symbols (70%-100% of them, 3 to 60 minutes, about one
  session in ten) and outages of one symbol (30 to 120 minutes);
- ``late_start`` / ``early_end``: a symbol's data begins 20-120 minutes after the open, or stops
  20-120 minutes before the close;
- ``halt``: a symbol halted for 10-60 minutes; these are handed to the classifier as halts.

Where two overlap the later in that list wins.  :func:`score` compares a classified run with
the truth slot by slot and returns precision and recall per kind
(``benchmarks/bench_classify.py`` prints them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .bars import Bars
from .calendar import Calendar
from .classify import KINDS, LATE_START, EARLY_END, HALT, NO_TRADE, OUTAGE, Halts

PRESENT = -1
MINUTE_NS = 60_000_000_000
SLOTS = 390


@dataclass
class Universe:
    """A drawn universe: the bars, the calendar, the halts to supply, and the truth."""

    calendar: Calendar
    bars: dict[str, Bars]
    halts: Halts
    symbols: list[str]
    opens_ns: np.ndarray   # int64[K]: each session's open
    truth: np.ndarray      # int8[S, K, SLOTS]: PRESENT, or the kind code of a missing slot


def universe(n_symbols: int = 100, n_sessions: int = 60, seed: int = 0,
             start: str = "2024-01-01") -> Universe:
    """Draw a universe with known truth (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    cal = Calendar.weekly("America/New_York", "09:30", "16:00", "Mon-Fri")
    first = np.datetime64(start, "D")
    labels = cal.sessions(first, first + np.timedelta64(n_sessions * 2 + 14, "D"))[:n_sessions]
    if len(labels) < n_sessions:
        raise ValueError("not enough sessions")
    opens = np.array([int(cal.session_windows(d).open_ns[0]) for d in labels], np.int64)
    n_s, n_k = n_symbols, n_sessions
    symbols = [f"S{i:03d}" for i in range(n_s)]
    # Quiet minutes.
    thin = rng.random(n_s) < 0.3
    base = np.where(thin, rng.uniform(0.15, 0.5, n_s), rng.uniform(0.002, 0.03, n_s))
    t = np.arange(SLOTS) / (SLOTS - 1)
    profile = 0.5 + 1.0 * np.sin(np.pi * t)            # 0.5 at the open/close, 1.5 midday
    day = np.where(rng.random(n_k) < 0.05, 3.0, 1.0)
    q = np.clip(base[:, None, None] * day[None, :, None] * profile[None, None, :], 0, 0.9)
    truth = np.where(rng.random((n_s, n_k, SLOTS)) < q, NO_TRADE, PRESENT).astype(np.int8)
    # Ends of a symbol's data.
    n_edges = max(1, n_s * n_k // 400)
    for kind in (LATE_START, EARLY_END):
        for _ in range(n_edges):
            s, k, n = rng.integers(1, n_s), rng.integers(n_k), int(rng.integers(20, 121))
            if kind == LATE_START:
                truth[s, k, :n] = kind
            else:
                truth[s, k, SLOTS - n:] = kind
    # Outages across symbols, and of one symbol.
    for _ in range(max(1, n_k // 10)):
        k, a, n = rng.integers(n_k), int(rng.integers(10, 330)), int(rng.integers(3, 61))
        hit = rng.random(n_s) < rng.uniform(0.7, 1.0)
        truth[hit, k, a:a + n] = OUTAGE
    for _ in range(max(1, n_s * n_k // 300)):
        s, k = rng.integers(n_s), rng.integers(n_k)
        a, n = int(rng.integers(30, 240)), int(rng.integers(30, 121))
        truth[s, k, a:a + n] = OUTAGE
    # Halts, supplied to the classifier.
    rows: list[tuple[str, int, int]] = []
    for _ in range(max(1, n_s * n_k // 1000)):
        hs, hk = int(rng.integers(n_s)), int(rng.integers(n_k))
        a, n = int(rng.integers(60, 300)), int(rng.integers(10, 61))
        truth[hs, hk, a:a + n] = HALT
        rows.append((symbols[hs], int(opens[hk] + a * MINUTE_NS),
                     int(opens[hk] + (a + n) * MINUTE_NS)))
    # The first symbol has the first and the last bar, so the scored span is the whole
    # range (no symbol's data ends are drawn there).
    truth[0, 0, 0] = PRESENT
    truth[0, -1, -1] = PRESENT
    slot_ns = opens[:, None] + np.arange(SLOTS, dtype=np.int64)[None, :] * MINUTE_NS
    bars = {}
    for i, symbol in enumerate(symbols):
        ts = slot_ns[truth[i] == PRESENT]
        close = 100.0 + np.cumsum(rng.normal(0, 0.05, len(ts)))
        bars[symbol] = Bars.from_arrays(ts, close, close + 0.01, close - 0.01, close,
                                        np.ones(len(ts)))
    return Universe(cal, bars, Halts.of(rows), symbols, opens, truth)


def predicted(run: Any, u: Universe) -> np.ndarray:
    """The kinds a classified run gives every slot of ``u`` (base interval), like ``truth``."""
    t = run.intervals[run.base]
    out = np.full(u.truth.shape, PRESENT, np.int8)
    rows = np.array([u.symbols.index(s) for s in run.symbols], np.int64)
    k = np.searchsorted(u.opens_ns, t.gap_start, side="right") - 1
    first = (t.gap_start - u.opens_ns[k]) // MINUTE_NS
    n = t.gap_count
    gap_of = np.repeat(np.arange(len(n)), n)
    slot = np.repeat(first, n) + np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    assert t.gap_kind is not None
    out[rows[t.gap_symbol[gap_of]], k[gap_of], slot] = t.gap_kind[gap_of]
    return out


def score(run: Any, u: Universe) -> dict[str, dict[str, float]]:
    """Precision and recall per kind over the missing slots, with the slots of each kind in
    truth (``support``)."""
    pred = predicted(run, u)
    missing = u.truth != PRESENT
    if (missing != (pred != PRESENT)).any():
        raise AssertionError("the run's gaps are not the universe's missing slots")
    truth, guess = u.truth[missing], pred[missing]
    out = {}
    for code, name in enumerate(KINDS):
        tp = int(((truth == code) & (guess == code)).sum())
        n_true, n_pred = int((truth == code).sum()), int((guess == code).sum())
        out[name] = {"precision": tp / n_pred if n_pred else float("nan"),
                     "recall": tp / n_true if n_true else float("nan"),
                     "support": n_true, "predicted": n_pred}
    return out
