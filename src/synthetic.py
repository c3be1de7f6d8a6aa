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

import zlib

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


# -- anomalies (issue 22): realistic bars with wrong bars injected, and their truth ----------------
#
# ``realistic_bars`` draws one symbol's 1m bars over session windows from a trade-count model:
# each slot gets a Poisson number of trades whose mean follows the time of day (a U-shaped day
# on exchange hours; busy European and American hours and a quiet Asian night on a 24-hour
# calendar) and the day (one session in twenty is thin); no trade means no bar.  The price is a
# latent random walk with a drift per session (trends) and a log-volatility that moves in
# blocks of 30 bars with persistence (volatility clustering), rounded to the tick: one trade
# gives a flat bar at the trade's price, and a quiet or coarse-ticked market gives many flat
# bars with volume, at the previous close or not; with several trades the bar spans a tick
# (bid-ask bounce) with probability 1 - 2**-(trades - 1).  Volume is the trades times a lognormal size.
#
# ``inject_anomalies`` puts every anomaly kind into such bars (or a real file's) at the rates of
# ``ANOMALY_RATES`` and returns the bars with the truth, one row per injected range:
#
# - ``filled``: per session, with probability ``filled`` (only in data with real volume): a
#   run of 5-45 consecutive slots (present or missing) replaced by bars O = H = L = C = the
#   previous close with zero volume (the vendor's fill-forward);
# - ``stale``: per session, with probability ``stale``: 20-90 consecutive bars whose price is
#   frozen at the previous close while their volume stays (a stuck feed), or, one time in
#   three, 6-20 bars that repeat the bar before them in every field;
# - ``spike``: per session, with probability ``spike``: one to three consecutive bars off by
#   2%-15%, and at least 20 times the median absolute return of the 30 bars around (a bad
#   print leaves the local range: a 2% print in a market whose minutes move 1% is none), the
#   whole bar or only its high or its low (a bad print in a wick), the next bar back at the
#   real price;
# - ``jump``: per symbol, with probability ``jump``: from a session on (after the fifth), every
#   price divided by a split ratio (2, 3, 4, 5, 7, 10, 3/2 or the inverses) and the volume
#   multiplied by it (an unadjusted split); the truth is the first bar of that session;
# - ``volume_shift``: per symbol, with probability ``volume_shift``: from a session on (after
#   the fifth) volume times 100, 1000, 1/100 or 1/1000 until the end or for 4-12 sessions; and
#   with probability ``zero_volume`` one session whose volume is zero on every bar (prices as
#   they were); the truth is the shifted sessions' bars;
# - ``clock_shift``: per symbol, with probability ``clock_shift``: a run of 2-8 sessions (after
#   the tenth) whose bars are stamped 1 or 2 hours late or early; bars that leave the run's
#   session windows are dropped (the engine would refuse them); the truth is the run's bars;
#   and with probability ``clock_stamp`` a run of 2-8 sessions stamped one base interval late
#   (a change of stamp convention: each session starts one bar late and its last bar sits at
#   the close), only where a break follows every session of the run (not on 24/7 or the FX
#   week, where it leaves one missing bar and nothing else); the truth is the run's bars;
# - ``duplicate_session``: per symbol, with probability ``duplicate_session``: one session
#   (after the fifth) whose bars are replaced by the values of one of the five sessions before
#   it, slot by slot (the slots of the copied session that exist in it), injected after the
#   splits and unit changes so that the copy is exact.
#
# At most one bar-level anomaly (filled, stale, spike) per session, none in the sessions that a
# session-level one touches, and the session-level ones in distinct sessions, so that every
# injected range has one kind.  ``score_anomalies`` matches found ranges to the truth by kind and
# overlap.

ANOMALY_RATES = {
    "filled": 0.03, "stale": 0.03, "spike": 0.05,             # per symbol and session
    "jump": 0.3, "volume_shift": 0.25, "zero_volume": 0.1,    # per symbol
    "clock_shift": 0.25, "clock_stamp": 0.15, "duplicate_session": 0.25,
}
SPLIT_RATIOS = (2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 1.5, 1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 7, 1 / 10,
                2 / 3)
HOUR_NS = 60 * MINUTE_NS


@dataclass
class AnomalyTruth:
    """Injected anomalies, one row per range: ``symbol`` (name), ``kind`` (a code of
    ``sessiondata.anomalies.KINDS``), ``start_ns``, ``end_ns`` (exclusive), ``bar_count``."""

    symbol: list[str]
    kind: np.ndarray
    start_ns: np.ndarray
    end_ns: np.ndarray
    bar_count: np.ndarray

    @classmethod
    def of(cls, rows: list[tuple[str, int, int, int, int]]) -> "AnomalyTruth":
        return cls([r[0] for r in rows], np.array([r[1] for r in rows], np.int8),
                   np.array([r[2] for r in rows], np.int64),
                   np.array([r[3] for r in rows], np.int64),
                   np.array([r[4] for r in rows], np.int64))

    def __len__(self) -> int:
        return len(self.symbol)


@dataclass
class AnomalyUniverse:
    """Realistic bars with anomalies injected: the calendar, the bars per symbol (injected),
    the clean bars, each symbol's windows and the truth."""

    calendar: Calendar
    bars: dict[str, Bars]
    clean: dict[str, Bars]
    windows: Any
    step_ns: int
    truth: AnomalyTruth


def _slots(windows: Any, step_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Every base slot of the windows and its session's index."""
    lens = ((windows.close_ns - windows.open_ns + step_ns - 1) // step_ns).astype(np.int64)
    starts = np.repeat(windows.open_ns, lens)
    first = np.repeat(np.cumsum(lens) - lens, lens)
    slot = starts + (np.arange(int(lens.sum()), dtype=np.int64) - first) * step_ns
    return slot, np.repeat(windows.session_ids, lens)


def realistic_bars(windows: Any, step_ns: int, rng: np.random.Generator, *,
                   trades: float = 20.0, price: float = 50.0, tick: float = 0.01,
                   vol: float = 0.0008, size: float = 100.0, profile: str = "u") -> Bars:
    """One symbol's bars on ``windows`` (see the comment above ``ANOMALY_RATES``).

    ``trades`` is the mean number of trades per slot at an average time of day, ``vol`` the
    return volatility per slot, ``profile`` ``"u"`` (a U-shaped exchange day) or ``"24h"``
    (by the UTC hour: quiet 21:00-06:00, busy 13:00-20:00).
    """
    slot, sid = _slots(windows, step_ns)
    n = len(slot)
    first_open = windows.open_ns[np.searchsorted(windows.session_ids,
                                                 np.arange(windows.n_sessions))]
    last_close = windows.close_ns[np.searchsorted(windows.session_ids,
                                                  np.arange(windows.n_sessions),
                                                  side="right") - 1]
    if profile == "u":
        x = (slot - first_open[sid]) / (last_close - first_open)[sid]
        act = 0.35 + 2.2 * np.exp(-x * 14) + 1.6 * np.exp(-(1 - x) * 16)
    else:
        hour = (slot // HOUR_NS) % 24
        act = np.select([(hour >= 21) | (hour < 6), (hour >= 13) & (hour < 20)],
                        [0.2, 2.2], 0.9)
    day = np.where(rng.random(windows.n_sessions) < 0.05, 0.3, 1.0) \
        * rng.lognormal(0, 0.25, windows.n_sessions)
    lam = trades * act * day[sid]
    k = rng.poisson(lam)
    # Volatility clustering: a persistent log-volatility per block of 30 slots.
    n_blocks = n // 30 + 1
    h = np.empty(n_blocks)
    shocks = rng.normal(0, 0.12, n_blocks)
    acc = 0.0
    for b in range(n_blocks):
        acc = 0.97 * acc + shocks[b]
        h[b] = acc
    sigma = vol * np.sqrt(act) * np.exp(h[np.arange(n) // 30])
    drift = rng.normal(0, vol * 0.04, windows.n_sessions)[sid]
    logp = np.log(price) + np.cumsum(drift + sigma * rng.standard_normal(n))
    latent = np.exp(logp)
    keep = k > 0
    ts, k, latent, sigma = slot[keep], k[keep], latent[keep], sigma[keep]
    close = np.maximum(np.round(latent / tick), 1) * tick
    prev = np.concatenate(([close[0]], close[:-1]))
    # The first trade of a bar is near the previous close.
    opn = np.maximum(np.round((prev + (latent - prev) * rng.random(len(ts)) * 0.5) / tick), 1) \
        * tick
    opn = np.where(k == 1, close, opn)
    wick = np.abs(rng.standard_normal((2, len(ts)))) * sigma * latent \
        * np.minimum(1.0, np.log(k) / 2)
    high = np.maximum(opn, close) + np.round(wick[0] / tick) * tick
    low = np.maximum(np.minimum(opn, close) - np.round(wick[1] / tick) * tick, tick)
    # Bid-ask bounce: with several trades some print a tick away (at the other side).
    bounce = (high == low) & (k >= 2) & (rng.random(len(ts)) < 1 - 0.5 ** (k - 1))
    high = np.where(bounce, high + tick, high)
    volume = np.maximum(1.0, np.round(k * size * rng.lognormal(0, 0.5, len(ts))))
    return Bars.from_arrays(ts, opn, high, low, close, volume)


def inject_anomalies(bars: Bars, windows: Any, step_ns: int, rng: np.random.Generator,
                     symbol: str = "S", rates: dict[str, float] | None = None
                     ) -> tuple[Bars, AnomalyTruth]:
    """Inject every anomaly kind into ``bars`` (see the comment above ``ANOMALY_RATES``).

    Kinds that need volume (``filled``, ``volume_shift``) are skipped when the bars have none
    (NaN or zero everywhere).  Returns the new bars and the truth.
    """
    from .anomalies import (CLOCK_SHIFT, DUPLICATE_SESSION, FILLED, JUMP, SPIKE, STALE,
                            VOLUME_SHIFT)

    r = dict(ANOMALY_RATES, **(rates or {}))
    ts = bars.ts.copy()
    o, h, lo, c = (bars.open.copy(), bars.high.copy(), bars.low.copy(), bars.close.copy())
    v = bars.volume.copy()
    has_volume = bool(np.nansum(v) > 0)
    n_k = windows.n_sessions
    win_sess = windows.session_ids

    def session_of(t: np.ndarray) -> np.ndarray:
        w = np.searchsorted(windows.open_ns, t, side="right") - 1
        inside = (w >= 0) & (t < windows.close_ns[np.maximum(w, 0)])
        return np.where(inside, win_sess[np.maximum(w, 0)], -1)

    sess = session_of(ts)
    counts = np.bincount(sess[sess >= 0], minlength=n_k)
    rows: list[tuple[str, int, int, int, int]] = []
    busy = np.zeros(n_k, bool)          # sessions a session-level anomaly touches
    dense = counts >= max(20, np.median(counts) * 0.5)

    def free_session(lo_k: int, hi_k: int, span: int = 1) -> int | None:
        cand = [k for k in range(lo_k, hi_k - span + 1)
                if dense[k:k + span].all() and not busy[max(0, k - 1):k + span + 1].any()]
        return int(rng.choice(cand)) if cand else None

    def span_rows(kind: int, k0: int, k1: int) -> None:
        m = (sess >= k0) & (sess < k1)
        if m.any():
            idx = np.flatnonzero(m)
            rows.append((symbol, kind, int(ts[idx[0]]), int(ts[idx[-1]] + step_ns),
                         int(len(idx))))

    # clock_shift: a run of sessions stamped whole hours off.
    if n_k > 14 and rng.random() < r["clock_shift"]:
        m = int(rng.integers(2, 9))
        k = free_session(10, n_k, m)
        if k is not None:
            shift = int(rng.choice([-2, -1, 1, 2])) * HOUR_NS
            run = (sess >= k) & (sess < k + m)
            moved = ts[run] + shift
            s_new = session_of(moved)
            ok = (s_new >= k) & (s_new < k + m)
            ts = np.concatenate((ts[~run], moved[ok]))
            o, h, lo, c, v = (np.concatenate((a[~run], a[run][ok])) for a in (o, h, lo, c, v))
            order = np.argsort(ts, kind="stable")
            ts, o, h, lo, c, v = (a[order] for a in (ts, o, h, lo, c, v))
            # a moved bar may now share a slot with a bar that was not moved (it cannot: the
            # run's sessions hold only moved bars), so the stamps stay unique.
            sess = session_of(ts)
            busy[k:k + m] = True
            span_rows(CLOCK_SHIFT, k, k + m)
    # clock_shift, the stamp convention: a run of sessions stamped one base interval late
    # (bar ends instead of bar starts), so that its sessions start one interval late and end
    # one late (the last bar stamped at the close).  Only where every session of the run is
    # followed by a break: on back-to-back sessions (24/7, the FX week) the bar moved over a
    # boundary fills the next session's first slot and the change leaves one missing bar at
    # the run's start, nothing a detector can tell from a missing bar.
    # Drawn from a stream of its own (seeded from the generator's state, which reading does
    # not advance), so that the other kinds' truth is what it was before this case existed.
    state = rng.bit_generator.state
    inner = state.get("state")
    material = (int(inner["state"]) if isinstance(inner, dict) and "state" in inner
                else zlib.crc32(repr(state).encode()))
    srng = np.random.default_rng(material ^ 0x5354414D50)
    if n_k > 14 and srng.random() < r["clock_stamp"]:
        m = int(srng.integers(2, 9))
        cand = [k for k in range(10, n_k - m + 1)
                if dense[k:k + m].all() and not busy[max(0, k - 1):k + m + 1].any()]
        k = int(srng.choice(cand)) if cand else None
        w_last = np.searchsorted(win_sess, np.arange(n_k), side="right") - 1
        w_next = np.minimum(w_last + 1, len(win_sess) - 1)
        gap_after = (w_last + 1 < len(win_sess)) & (windows.open_ns[w_next]
                                                    > windows.close_ns[w_last])
        if k is not None and gap_after[k:k + m].all():
            run = (sess >= k) & (sess < k + m)
            ts = np.where(run, ts + step_ns, ts)
            busy[k:k + m] = True
            idx = np.flatnonzero(run)
            rows.append((symbol, CLOCK_SHIFT, int(ts[idx[0]]), int(ts[idx[-1]] + step_ns),
                         int(len(idx))))
            sess = np.where(run, sess, session_of(ts))
    # volume_shift: a unit change from a session on; a session with zero volume.
    if has_volume and n_k > 8 and rng.random() < r["volume_shift"]:
        k = free_session(6, n_k)
        if k is not None:
            f = float(rng.choice([100.0, 1000.0, 0.01, 0.001]))
            end = n_k if rng.random() < 0.5 else min(n_k, k + int(rng.integers(4, 13)))
            m = (sess >= k) & (sess < end)
            v[m] *= f
            busy[k] = True
            if end < n_k:
                busy[end - 1:end + 1] = True
            span_rows(VOLUME_SHIFT, k, end)
    if has_volume and n_k > 4 and rng.random() < r["zero_volume"]:
        k = free_session(2, n_k)
        if k is not None:
            v[sess == k] = 0.0
            busy[k] = True
            span_rows(VOLUME_SHIFT, k, k + 1)
    # jump: an unadjusted split from a session on.
    if n_k > 8 and rng.random() < r["jump"]:
        k = free_session(6, n_k)
        if k is not None:
            ratio = float(rng.choice(SPLIT_RATIOS))
            after = sess >= k
            for a in (o, h, lo, c):
                a[after] /= ratio
            v[after] *= ratio
            busy[k] = True
            i = int(np.flatnonzero(sess == k)[0])
            rows.append((symbol, JUMP, int(ts[i]), int(ts[i] + step_ns), 1))
    # duplicate_session: one session's values replaced by an earlier one's, slot by slot
    # (after the splits and unit changes, so that the copy is exact).
    if n_k > 8 and rng.random() < r["duplicate_session"]:
        k = free_session(6, n_k)
        if k is not None:
            j = k - int(rng.integers(1, 6))
            open_k = windows.open_ns[win_sess == k][0]
            open_j = windows.open_ns[win_sess == j][0]
            src = np.flatnonzero(sess == j)
            new_ts = ts[src] - open_j + open_k
            ok = session_of(new_ts) == k
            keep = sess != k
            ts = np.concatenate((ts[keep], new_ts[ok]))
            o, h, lo, c, v = (np.concatenate((a[keep], a[src][ok])) for a in (o, h, lo, c, v))
            order = np.argsort(ts, kind="stable")
            ts, o, h, lo, c, v = (a[order] for a in (ts, o, h, lo, c, v))
            sess = session_of(ts)
            busy[k] = True
            span_rows(DUPLICATE_SESSION, k, k + 1)
    # Bar-level anomalies: at most one per session, away from the session-level ones.
    extra_ts: list[np.ndarray] = []
    drop = np.zeros(len(ts), bool)
    p_fill = r["filled"] if has_volume else 0.0
    for k in range(n_k):
        if busy[k] or not dense[k]:
            continue
        idx = np.flatnonzero(sess == k)
        u = rng.random()
        if u < p_fill:
            wins = np.flatnonzero(win_sess == k)
            wo, wc = windows.open_ns[wins[0]], windows.close_ns[wins[0]]
            n_slots = int((wc - wo) // step_ns)
            length = int(rng.integers(5, 46))
            if n_slots < length + 20:
                continue
            a = int(rng.integers(10, n_slots - length - 5))
            start = wo + a * step_ns
            stop = start + length * step_ns
            before = np.searchsorted(ts, start) - 1
            if before < 0:
                continue
            fill = c[before]
            inside = (ts >= start) & (ts < stop)
            drop |= inside
            new = start + np.arange(length, dtype=np.int64) * step_ns
            extra_ts.append(np.stack([new.astype(np.float64), np.full(length, fill)]))
            rows.append((symbol, FILLED, int(start), int(stop), length))
        elif u < p_fill + r["stale"]:
            if rng.random() < 1 / 3:
                length = int(rng.integers(6, 21))
                if len(idx) < length + 30:
                    continue
                a = int(idx[int(rng.integers(10, len(idx) - length - 10))])
                for arr in (o, h, lo, c, v):
                    arr[a + 1:a + 1 + length] = arr[a]
                if h[a] == lo[a]:        # a flat bar repeated is the price-frozen case
                    h[a + 1:a + 1 + length] = h[a] + max(h[a] * 1e-3, 0.01)
                    h[a] = h[a + 1]
                rows.append((symbol, STALE, int(ts[a]), int(ts[a + length] + step_ns),
                             length + 1))
            else:
                length = int(rng.integers(20, 91))
                if len(idx) < length + 30:
                    continue
                a = int(idx[int(rng.integers(10, len(idx) - length - 10))])
                p = c[a - 1]
                for arr in (o, h, lo, c):
                    arr[a:a + length] = p
                rows.append((symbol, STALE, int(ts[a]), int(ts[a + length - 1] + step_ns),
                             length))
        elif u < p_fill + r["stale"] + r["spike"]:
            if len(idx) < 60:
                continue
            a = int(idx[int(rng.integers(25, len(idx) - 25))])
            m = int(rng.choice([1, 1, 1, 2, 3]))
            # A bad print leaves the local range by definition: 2%-15%, and at least 20
            # times the median absolute return of the 30 bars around it.
            near = c[max(1, a - 15):a + 15]
            local = float(np.median(np.abs(np.diff(np.log(near))))) if len(near) > 2 else 0.0
            size = max(float(rng.uniform(0.02, 0.15)), 20 * local)
            sign = 1.0 if rng.random() < 0.5 else -1.0
            how = rng.choice(["bar", "bar", "high", "low"])
            sl = slice(a, a + m)
            if how == "bar":
                for arr in (o, h, lo, c):
                    arr[sl] *= 1 + sign * size
            elif how == "high":
                h[sl] = np.maximum(o[sl], c[sl]) * (1 + size)
            else:
                lo[sl] = np.minimum(o[sl], c[sl]) * (1 - size)
            rows.append((symbol, SPIKE, int(ts[a]), int(ts[a + m - 1] + step_ns), m))
    if extra_ts or drop.any():
        keep = ~drop
        ts, o, h, lo, c, v = (a[keep] for a in (ts, o, h, lo, c, v))
        if extra_ts:
            e = np.concatenate(extra_ts, axis=1)
            ets = e[0].astype(np.int64)
            ts = np.concatenate((ts, ets))
            o = np.concatenate((o, e[1]))
            h = np.concatenate((h, e[1]))
            lo = np.concatenate((lo, e[1]))
            c = np.concatenate((c, e[1]))
            v = np.concatenate((v, np.zeros(len(ets))))
            order = np.argsort(ts, kind="stable")
            ts, o, h, lo, c, v = (a[order] for a in (ts, o, h, lo, c, v))
    rows.sort(key=lambda row: row[2])
    out = Bars.from_arrays(ts, o, h, lo, c, v, interval=bars.interval)
    return out, AnomalyTruth.of(rows)


def anomaly_universe(n_symbols: int = 100, n_sessions: int = 60, seed: int = 0,
                     start: str = "2024-01-01", hours: str = "exchange",
                     rates: dict[str, float] | None = None) -> AnomalyUniverse:
    """Realistic 1m bars for ``n_symbols`` over ``n_sessions`` with every anomaly kind
    injected (see the comment above ``ANOMALY_RATES``).

    ``hours``: ``"exchange"`` (New York 09:30-16:00, weekdays) or ``"24h"`` (24/7, UTC days).
    Symbols: 55% liquid (10-200 trades a minute, prices 20-500), 25% thin (0.3-3 trades a
    minute, prices 2-30, so most of their minutes are empty or flat), 20% in between.
    """
    rng = np.random.default_rng(seed)
    if hours == "exchange":
        cal = Calendar.weekly("America/New_York", "09:30", "16:00", "Mon-Fri")
        profile = "u"
    else:
        cal = Calendar.always()
        profile = "24h"
    first = np.datetime64(start, "D")
    labels = cal.sessions(first, first + np.timedelta64(n_sessions * 2 + 14, "D"))[:n_sessions]
    lo_ns = int(np.datetime64(labels[0], "ns").astype(np.int64)) - 86_400_000_000_000
    hi_ns = int(np.datetime64(labels[-1] + 1, "ns").astype(np.int64)) + 86_400_000_000_000
    windows = cal.windows(lo_ns, hi_ns)
    keep = (windows.sessions[windows.session_ids] >= labels[0]) \
        & (windows.sessions[windows.session_ids] <= labels[-1])
    from .calendar import Windows
    ids = windows.session_ids[keep]
    windows = Windows(windows.open_ns[keep], windows.close_ns[keep], ids - ids[0],
                      windows.sessions[int(ids[0]):int(ids[-1]) + 1])
    bars, clean = {}, {}
    rows: list[AnomalyTruth] = []
    for i in range(n_symbols):
        name = f"A{i:03d}"
        u = rng.random()
        if u < 0.55:
            kw = dict(trades=float(rng.uniform(10, 200)), price=float(rng.uniform(20, 500)),
                      vol=float(rng.uniform(0.0004, 0.0015)), size=float(rng.uniform(50, 500)))
        elif u < 0.8:
            kw = dict(trades=float(rng.uniform(0.3, 3)), price=float(rng.uniform(2, 30)),
                      vol=float(rng.uniform(0.0005, 0.002)), size=float(rng.uniform(10, 200)))
        else:
            kw = dict(trades=float(rng.uniform(3, 10)), price=float(rng.uniform(10, 100)),
                      vol=float(rng.uniform(0.0005, 0.0015)), size=float(rng.uniform(20, 300)))
        b = realistic_bars(windows, MINUTE_NS, rng, profile=profile, **kw)
        clean[name] = b
        bars[name], t = inject_anomalies(b, windows, MINUTE_NS, rng, name, rates)
        rows.append(t)
    truth = AnomalyTruth(sum((t.symbol for t in rows), []),
                         np.concatenate([t.kind for t in rows]),
                         np.concatenate([t.start_ns for t in rows]),
                         np.concatenate([t.end_ns for t in rows]),
                         np.concatenate([t.bar_count for t in rows]))
    return AnomalyUniverse(cal, bars, clean, windows, MINUTE_NS, truth)


def score_anomalies(found: dict[str, Any], truth: AnomalyTruth,
                    ignore: dict[str, Any] | None = None) -> dict[str, dict[str, float]]:
    """Precision and recall per anomaly kind, matching ranges by symbol, kind and overlap.

    ``found`` maps a symbol to its ``Anomalies`` (arrays ``kind``, ``start_ns``, ``end_ns``).
    A found range is right when it overlaps a true range of its kind and symbol; a true range
    is found when a found range of its kind overlaps it.  ``ignore`` (per symbol, the anomalies
    found in the bars before injection, a real file's own) takes out the found ranges that
    overlap one of those of the same kind.
    """
    from .anomalies import KINDS

    out = {}
    for code, name in enumerate(KINDS):
        tp_found = n_found = tp_true = n_true = 0
        for sym in sorted(set(found) | set(truth.symbol)):
            sel = np.array([s == sym for s in truth.symbol], bool) & (truth.kind == code)
            ts0, ts1 = truth.start_ns[sel], truth.end_ns[sel]
            f = found.get(sym)
            if f is not None:
                fm = f.kind == code
                f0, f1 = f.start_ns[fm], f.end_ns[fm]
            else:
                f0 = f1 = np.empty(0, np.int64)
            if ignore is not None and sym in ignore and len(f0):
                g = ignore[sym]
                gm = g.kind == code
                own = (f0[:, None] < g.end_ns[gm][None, :]) & (f1[:, None] > g.start_ns[gm][None, :])
                f0, f1 = f0[~own.any(axis=1)], f1[~own.any(axis=1)]
            hit = (f0[:, None] < ts1[None, :]) & (f1[:, None] > ts0[None, :])
            n_found += len(f0)
            n_true += len(ts0)
            tp_found += int(hit.any(axis=1).sum())
            tp_true += int(hit.any(axis=0).sum())
        out[name] = {"precision": tp_found / n_found if n_found else float("nan"),
                     "recall": tp_true / n_true if n_true else float("nan"),
                     "support": n_true, "predicted": n_found}
    return out
