"""Why a bar is missing: the kind of every gap, in one pass over a run's results.

A gap is a run of expected slots with no bar.  In trade bars most are minutes nobody traded;
some are lost data.  Because a run holds every symbol of every session, the two can be told
apart.  :func:`classify_run` gives every gap of a :class:`~sessiondata.results.RunResult` one
kind, and the inputs that explain it, as columns of its interval tables:

``no_trade``
    consistent with the symbol's own activity at that time of day: the probability that all
    ``k`` slots of the run are quiet, under that activity, is at least ``quiet_alpha``;
``outage``
    most of the run's slots are missing across most symbols that normally have bars there
    (cross-sectional), or the run is too long to be quiet trading for that symbol;
``late_start`` / ``early_end``
    too long to be quiet, and the run begins at the symbol's first expected slot of the
    session (its data begins after the window opens) or ends at its last (its data stops
    before the close);
``halt``
    most of the run's slots lie inside a halt that the user supplied (:class:`Halts`, a CSV
    of ``symbol,start,end``; ``*`` for every symbol).  Never guessed.

How it decides (all thresholds are :class:`ClassifyOptions`, with their defaults):

- Activity.  For each symbol and time-of-day bucket (``activity_bucket``, 30 minutes, in the
  calendar's local time), the share of expected slots that hold a bar over the sessions of
  the run, ``(present + 1) / (expected + 2)``.  Expected slots come from the session windows
  and the scored span, missing ones from the gaps: no bar is read again.
- The session's own level.  A thin day (a holiday such as MLK day) is quieter than usual; a
  gap there is judged against that day: the activity is scaled by ``r``, the bars the symbol
  has around the gap (``level_window``, 60 minutes each side, within the session; the whole
  session when fewer than 10 slots lie around it) over the bars its usual activity expects
  there, at most 1.
- Run length.  ``log P(quiet) = sum over the run's slots of log(1 - r * activity)``; below
  ``log(quiet_alpha)`` (1e-6) the run is not quiet trading.
- Cross-section.  A symbol normally has bars in a bucket when its activity there is at least
  ``active_rate`` (0.5).  A slot is an outage slot when at least ``outage_min_symbols`` (3) of
  the symbols that normally have bars there miss it, and they are at least ``outage_share``
  (0.5) of those expected there.
- Precedence: ``halt`` (half of the run's slots or more in halts), then ``outage`` (half of
  them outage slots or more, unless the symbol has a bar in an outage slot next to the run:
  it was trading through the outage), then, for runs too long to be quiet, ``late_start`` /
  ``early_end`` at the session's edges and ``outage`` elsewhere (a run that covers the whole
  session is an ``outage``); every other run is ``no_trade``.

``quiet_alpha`` is a probability per gap: the more slots a session has, the more quiet runs
reach it by chance (with 1s bars, 86,400 slots a day, lower it; at 1m the default keeps no_trade
and outage above 0.95 precision and recall on ``benchmarks/bench_classify.py``'s universes).

Work and memory follow the gaps and the sessions, not the slots: the slots of the grid are
laid out as runs (one window, one bucket), and above :data:`SLOT_BUDGET` missing slots in a
table the gaps are cut into pieces over which every input is the same (at bucket and window
changes, at every gap's start and end, at halts), each weighed by its length: a symbol silent
for decades on a 24/7 calendar is one gap of about 48 pieces per empty session.  Below the
budget the sums run slot by slot as they always have (every value exact to the bit); above
it an activity or share is the same up to the last bits of a float (a piece adds
``length * value`` where slot by slot it added ``value`` ``length`` times), so a kind can
differ only where a sum lands within that rounding of its threshold (``tests/test_sparse.py``
forces the pieces on universes with every kind: the same kinds and lost slots).

A gap is never split: the kind is the gap's, so ``gap_count`` and ``ranges`` keep their
meaning.  A gap that is part outage, part quiet, takes the kind of most of its slots.
Gaps of derived intervals take the kind (and inputs) of the base gap that holds them: a
derived bucket is missing only when every base slot in it is.

Columns set on every :class:`~sessiondata.results.IntervalTable`: ``gap_kind`` (int8 codes,
names in :data:`KINDS`), ``gap_activity`` (mean activity over the run's slots, after the
session's level), ``gap_share`` (mean share of the symbols that normally have bars there that
miss the run's slots; NaN when fewer than ``outage_min_symbols`` normally have bars), and
``lost`` (int64[S, K]: slots lost to ``outage``/``late_start``/``early_end``), from which the
data quality score is ``100 * (expected - lost) / expected``.

Live sessions (``live_result.live_result``) are classified the same way with the one session
they hold as history: halts, the cross-section and the edges work as in a run; the activity
of a symbol is its activity in that session so far.
"""

from __future__ import annotations

import csv
import datetime as _dt
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from sessiondata.intervals import parse_interval
from sessiondata.results import (  # noqa: F401 - the kind columns are the model's; named here too
    EARLY_END,
    HALT,
    KINDS,
    LATE_START,
    LOST_KINDS,
    NO_TRADE,
    OUTAGE,
    data_quality,
    kind_cells,
    kind_counts,
    kind_names,
    kind_totals,
)

if TYPE_CHECKING:  # pragma: no cover
    from .results import IntervalTable, RunResult


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
MIN_AROUND = 10   # slots around a gap to measure its local level; else the session's


@dataclass(frozen=True)
class Halts:
    """Halts the user supplies: per row a symbol (``*`` for every symbol) and ``[start, end)``
    in UTC nanoseconds."""

    symbol: tuple[str, ...] = ()
    start_ns: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    end_ns: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    @classmethod
    def of(cls, rows: Iterable[tuple[str, Any, Any]], tz: Any = None) -> "Halts":
        """Halts from ``(symbol, start, end)`` rows; times are ISO 8601 strings, datetimes or
        nanoseconds; naive times are in ``tz`` (default UTC)."""
        symbols, starts, ends = [], [], []
        for i, (symbol, start, end) in enumerate(rows):
            a, b = _instant_ns(start, tz), _instant_ns(end, tz)
            if b <= a:
                raise ValueError(f"halt {i + 1} ({symbol}): end {end} is not after start {start}")
            symbols.append(str(symbol).strip())
            starts.append(a)
            ends.append(b)
        return cls(tuple(symbols), np.array(starts, np.int64), np.array(ends, np.int64))

    @classmethod
    def read(cls, path: str | os.PathLike, tz: Any = None) -> "Halts":
        """Halts from a CSV file of ``symbol,start,end`` (a header line is optional)."""
        rows = []
        with open(path, newline="", encoding="utf-8") as f:
            for n, row in enumerate(csv.reader(f), 1):
                if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                    continue
                if n == 1 and row[0].strip().lower() == "symbol":
                    continue
                if len(row) != 3:
                    raise ValueError(f"{path}: line {n}: expected symbol,start,end, got "
                                     f"{len(row)} fields")
                rows.append((row[0], row[1].strip(), row[2].strip()))
        try:
            return cls.of(rows, tz)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    def __len__(self) -> int:
        return len(self.symbol)


def _instant_ns(value: Any, tz: Any) -> int:
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        value = _dt.datetime.fromisoformat(text)
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            zone = tz if tz is not None else _dt.timezone.utc
            if isinstance(zone, str):
                from zoneinfo import ZoneInfo
                zone = ZoneInfo(zone)
            value = value.replace(tzinfo=zone)
        return ((value - _EPOCH) // _dt.timedelta(microseconds=1)) * 1000
    raise TypeError(f"a halt time must be ISO 8601 text, a datetime or nanoseconds, got "
                    f"{type(value).__name__}")


@dataclass(frozen=True)
class ClassifyOptions:
    """The thresholds of the classification (see the module's docstring).

    Parameters
    ----------
    activity_bucket : str
        Width of the time-of-day buckets over which a symbol's activity is estimated
        (default ``"30m"``).
    level_window : str
        The activity level of a gap's session is measured this far on each side of the gap
        (default ``"60m"``; ``""`` for the whole session).
    quiet_alpha : float
        A run is ``no_trade`` while the probability that all its slots are quiet is at least
        this (default 1e-6).
    outage_share : float
        Share of the symbols that normally have bars in a slot that must miss it for an
        outage slot (default 0.5).
    outage_min_symbols : int
        ... and at least this many of them (default 3).
    active_rate : float
        A symbol normally has bars in a bucket when its activity there is at least this
        (default 0.5).
    halts : Halts, optional
        Halts the user supplies.
    """

    activity_bucket: str = "30m"
    level_window: str = "60m"
    quiet_alpha: float = 1e-6
    outage_share: float = 0.5
    outage_min_symbols: int = 3
    active_rate: float = 0.5
    halts: Halts | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.quiet_alpha < 1.0:
            raise ValueError(f"quiet_alpha must be in (0, 1), got {self.quiet_alpha}")
        if not 0.0 < self.outage_share <= 1.0:
            raise ValueError(f"outage_share must be in (0, 1], got {self.outage_share}")
        if not 0.0 < self.active_rate <= 1.0:
            raise ValueError(f"active_rate must be in (0, 1], got {self.active_rate}")
        if self.outage_min_symbols < 1:
            raise ValueError("outage_min_symbols must be at least 1")
        bucket = parse_interval(self.activity_bucket)
        if bucket.is_session or bucket.ns <= 0 or 86_400 * 10**9 % bucket.ns:
            raise ValueError(f"activity_bucket must divide a day, got {self.activity_bucket!r}")


# -- the pass -------------------------------------------------------------------------------


def classify_run(run: "RunResult", options: ClassifyOptions | None = None) -> "RunResult":
    """Give every gap of ``run`` a kind (in place; returns ``run``).  See the module's
    docstring for the rules and the columns set."""
    options = options or ClassifyOptions()
    n_s = len(run.symbols)
    bases = np.array([run.base_of(s) for s in range(n_s)], object)
    done: dict[str, np.ndarray] = {}   # interval -> bool[G]: classified directly
    for name in dict.fromkeys(bases.tolist()):
        t = run.intervals.get(name)
        if t is None:
            continue
        mine = bases == name
        _classify_table(run, t, name, mine, options)
        done[name] = mine[t.gap_symbol] if len(t.gap_symbol) else np.zeros(0, bool)
    for name, t in run.intervals.items():
        if name in done and done[name].all():
            _set_lost(t)
            continue
        if name not in done:
            _empty_columns(t)
            done[name] = np.zeros(len(t.gap_symbol), bool)
        todo = ~done[name]
        for base in dict.fromkeys(bases.tolist()):
            src = run.intervals.get(base)
            if src is None or src is t or src.gap_kind is None:
                continue
            pick = todo & (bases[t.gap_symbol] == base) if len(t.gap_symbol) else todo
            if pick.any():
                _inherit(t, src, np.flatnonzero(pick), parse_interval(base).ns)
        _set_lost(t)
    return run


def _empty_columns(t: "IntervalTable") -> None:
    g = len(t.gap_symbol)
    t.gap_kind = np.zeros(g, np.int8)
    t.gap_activity = np.full(g, np.nan)
    t.gap_share = np.full(g, np.nan)


def _set_lost(t: "IntervalTable") -> None:
    assert t.gap_kind is not None
    n_s, n_k = t.bars.shape
    bad = np.isin(t.gap_kind, LOST_KINDS)
    t.lost = np.bincount(t.gap_symbol[bad] * n_k + t.gap_session[bad],
                         weights=t.gap_count[bad], minlength=n_s * n_k
                         ).astype(np.int64).reshape(n_s, n_k)


def _inherit(t: "IntervalTable", src: "IntervalTable", idx: np.ndarray, step_ns: int) -> None:
    """Gaps ``idx`` of a derived table take the kind of the base gap that holds their start."""
    assert src.gap_kind is not None and t.gap_kind is not None
    assert t.gap_activity is not None and t.gap_share is not None
    assert src.gap_activity is not None and src.gap_share is not None
    # Base gaps are sorted by symbol, then start: one integer key (symbol, base slot of the
    # start) orders both, and a search finds, per derived gap, the last base gap of its
    # symbol that starts at or before it.
    n_b = len(src.gap_start)
    if not n_b:
        return
    lo = int(min(src.gap_start.min(), t.gap_start[idx].min()))
    hi = int(max(src.gap_start.max(), t.gap_start[idx].max()))
    width = (hi - lo) // step_ns + 2
    key_b = src.gap_symbol * width + (src.gap_start - lo) // step_ns
    key_d = t.gap_symbol[idx] * width + (t.gap_start[idx] - lo) // step_ns
    pos = np.searchsorted(key_b, key_d, side="right") - 1
    posc = np.clip(pos, 0, n_b - 1)
    ok = ((pos >= 0) & (src.gap_symbol[posc] == t.gap_symbol[idx])
          & (src.gap_end[posc] > t.gap_start[idx]))
    t.gap_kind[idx[ok]] = src.gap_kind[posc[ok]]
    t.gap_activity[idx[ok]] = src.gap_activity[posc[ok]]
    t.gap_share[idx[ok]] = src.gap_share[posc[ok]]


@dataclass
class _Slots:
    """The slots of an interval's grid over a run's windows, as runs of consecutive slots of
    one window and one time-of-day bucket: never made slot by slot (1s bars over a year of
    24/7 sessions are 31.5M slots).  Slots are numbered window after window."""

    n: int                    # slots in all
    step_ns: int
    window_first: np.ndarray  # int64[W]: number of each window's first slot
    window_open: np.ndarray   # int64[W]
    run_start: np.ndarray     # int64[R]: number of each run's first slot
    run_len: np.ndarray       # int64[R]
    run_bucket: np.ndarray    # int64[R]
    run_session: np.ndarray   # int64[R]
    run_window: np.ndarray    # int64[R]
    n_buckets: int
    _run_at: np.ndarray | None = field(default=None, repr=False)  # slot -> run, when small

    def run_of(self, slot: np.ndarray) -> np.ndarray:
        """The run of each slot (the last run that starts at or before it)."""
        slot = np.asarray(slot)
        # Within the slot budget a table of every slot's run is small (8 bytes a slot) and
        # a lookup is many times faster than a binary search per slot (gaps by the 100,000).
        if self.n <= SLOT_BUDGET and len(slot) > 64 and self.n and slot.min() >= 0:
            if self._run_at is None:
                self._run_at = np.repeat(np.arange(len(self.run_len), dtype=np.int64),
                                         self.run_len)
            return self._run_at[np.minimum(slot, self.n - 1)]
        return np.searchsorted(self.run_start, slot, side="right") - 1

    def ns_of(self, slot: np.ndarray) -> np.ndarray:
        w = np.searchsorted(self.window_first, slot, side="right") - 1
        return self.window_open[w] + (slot - self.window_first[w]) * self.step_ns


def _slots(run: "RunResult", step_ns: int, bucket_ns: int) -> _Slots:
    w = run.windows
    n_w = -((w.open_ns - w.close_ns) // step_ns)          # ceil: the last slot may be short
    first = np.r_[0, np.cumsum(n_w)[:-1]].astype(np.int64)
    total = int(n_w.sum())
    # A window does not cross a change of its zone's offset (changes fall outside sessions):
    # one UTC offset per window.
    tz = run.calendar.tz
    day = 86_400 * 1_000_000_000
    local0 = np.array([(o + _offset_s(o, tz) * 1_000_000_000) % day
                       for o in w.open_ns.tolist()], np.int64).reshape(-1)
    # A run starts at each window's first slot and at the first slot at or after each bucket
    # edge inside the window: laid out per edge, never per slot (one pass over the windows).
    e_lo = local0 // bucket_ns + 1
    e_n = np.maximum((local0 + n_w * step_ns - 1) // bucket_ns + 1 - e_lo, 0)
    e_win = np.repeat(np.arange(len(n_w), dtype=np.int64), e_n)
    edge = (np.repeat(e_lo, e_n)
            + np.arange(int(e_n.sum()), dtype=np.int64) - np.repeat(np.cumsum(e_n) - e_n, e_n)
            ) * bucket_ns
    at = -((local0[e_win] - edge) // step_ns)                      # ceil((edge - l0) / step)
    keep = at < n_w[e_win]
    run_start = _sorted_unique(np.r_[first[n_w > 0], first[e_win[keep]] + at[keep]])
    del e_win, edge, at, keep
    run_window = np.searchsorted(first, run_start, side="right") - 1
    # ... the last window with that first slot (empty windows share it with the next)
    run_bucket = (((local0[run_window] + (run_start - first[run_window]) * step_ns) % day)
                  // bucket_ns)
    return _Slots(total, step_ns, first, w.open_ns, run_start,
                  np.diff(np.r_[run_start, total]).astype(np.int64),
                  run_bucket.astype(np.int64),
                  w.session_ids[run_window], run_window.astype(np.int64),
                  int(day // bucket_ns))


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    """``np.unique`` of int64 values by a sort (its hash table is slower on millions)."""
    x = np.sort(x.astype(np.int64, copy=False))
    return x[np.r_[True, x[1:] != x[:-1]]] if len(x) else x


def _offset_s(ns: int, tz: Any) -> int:
    off = (_EPOCH + _dt.timedelta(microseconds=ns // 1000)).astimezone(tz).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


def _classify_table(run: "RunResult", t: "IntervalTable", name: str, mine: np.ndarray,
                    opt: ClassifyOptions) -> None:
    """Classify the gaps of the symbols ``mine`` (whose base interval this table is)."""
    if t.gap_kind is None or len(t.gap_kind) != len(t.gap_symbol):
        _empty_columns(t)
    assert t.gap_kind is not None and t.gap_activity is not None and t.gap_share is not None
    n_s, n_k = t.bars.shape
    g_all = np.flatnonzero(mine[t.gap_symbol]) if len(t.gap_symbol) else np.zeros(0, np.int64)
    if not len(g_all):
        return
    step = parse_interval(name).ns
    sl = _slots(run, step, parse_interval(opt.activity_bucket).ns)
    n_b = sl.n_buckets
    w = run.windows
    # Expected slots per session and bucket, then per symbol: member sessions, less the
    # slots outside a symbol's scored span where it cuts a session.
    e_kb = np.bincount(sl.run_session * n_b + sl.run_bucket, weights=sl.run_len,
                       minlength=n_k * n_b).reshape(n_k, n_b)
    # No product of float matrices here (``@`` of float64 is BLAS's dgemm: above a small
    # size OpenBLAS runs it on its threads, which then spin for a while, taking a core from
    # the rest of the run).  Sums over a symbol's sessions go by its runs of member
    # sessions (one, mostly) and cumulative sums over the sessions, in integers (exact, as
    # the products were): work follows symbols + sessions, not symbols x sessions x buckets.
    member_b = run.member & mine[:, None]
    m_sym, m_k0, m_k1 = _member_runs(member_b)
    e_cum = np.zeros((n_k + 1, n_b), np.int64)
    np.cumsum(e_kb.astype(np.int64), axis=0, out=e_cum[1:])
    expected_i = np.zeros((n_s, n_b), np.int64)
    np.add.at(expected_i, m_sym, e_cum[m_k1] - e_cum[m_k0])
    expected_sb = expected_i.astype(np.float64)                          # [S, B]
    cut_skb: dict[tuple[int, int], np.ndarray] = {}
    s_first = sl.window_first[np.searchsorted(w.session_ids, np.arange(n_k), side="left")]
    s_last = np.r_[sl.window_first, sl.n][np.searchsorted(w.session_ids, np.arange(n_k),
                                                          side="right")]
    k_runs = np.searchsorted(sl.run_session, np.arange(n_k + 1), side="left")
    opens, closes = w.session_open_ns, w.session_close_ns
    cut = member_b & ((run.since_ns > opens[None, :]) | (run.until_ns < closes[None, :]))
    for s, k in np.argwhere(cut).tolist():
        r = np.arange(k_runs[k], k_runs[k + 1])
        ns0 = sl.ns_of(sl.run_start[r])
        since = max(int(run.since_ns[s, k]), int(opens[k]))
        until = min(int(run.until_ns[s, k]), int(closes[k]))
        n_r = sl.run_len[r]
        before = np.clip(-((ns0 - since) // step), 0, n_r)      # slots starting before since
        inside = np.clip(-((ns0 - until) // step), 0, n_r)      # slots starting before until
        gone = np.bincount(sl.run_bucket[r], weights=before + (n_r - inside), minlength=n_b)
        expected_sb[s] -= gone
        cut_skb[(s, k)] = gone
    # The gaps' slots, as pieces: runs of slots over which every input of the rules is the
    # same (one bucket, one window, the same symbols missing).  Each piece stands for
    # ``p_len`` slots; the sums below weigh it by that length.
    g_sym, g_ses = t.gap_symbol[g_all], t.gap_session[g_all]
    g_start, g_n = t.gap_start[g_all], t.gap_count[g_all]
    g_win = np.searchsorted(w.open_ns, g_start, side="right") - 1
    g_slot0 = sl.window_first[g_win] + (g_start - w.open_ns[g_win]) // step
    total = int(g_n.sum())
    halts = opt.halts
    p_gap, p_start, p_len = _pieces(g_slot0, g_n, sl, total, _slot_of(
        sl, np.r_[halts.start_ns, halts.end_ns]) if halts is not None and len(halts) else None)
    x_sym, x_b = g_sym[p_gap], sl.run_bucket[sl.run_of(p_start)]
    n_p = len(p_gap)
    missing_sb = np.bincount(x_sym * n_b + x_b, weights=p_len,
                             minlength=n_s * n_b).reshape(n_s, n_b)
    rate = (expected_sb - missing_sb + 1.0) / (np.maximum(expected_sb, 0.0) + 2.0)
    rate = np.clip(rate, 0.0, 1.0)
    # The session's own level: bars held over the bars usual activity expects there.
    usual_sk = _rate_times_slots(rate, e_kb)                             # [S, K]
    for (s, k), gone in cut_skb.items():
        usual_sk[s, k] -= float(rate[s] @ gone)
    present_sk = (t.expected - np.bincount(t.gap_symbol * n_k + t.gap_session,
                                           weights=t.gap_count, minlength=n_s * n_k)
                  .reshape(n_s, n_k)).astype(np.float64)
    x_rate = rate[x_sym, x_b]
    usual_in_gap = np.bincount(p_gap, weights=x_rate * p_len, minlength=len(g_all))
    outside = np.maximum(usual_sk[g_sym, g_ses] - usual_in_gap, 1e-9)
    level = np.clip(present_sk[g_sym, g_ses] / outside, 0.05, 1.0)
    # ... and, where there are enough slots around the gap, the level around it in that
    # session (a holiday's thin afternoon is quieter than its morning).
    around = max(0, parse_interval(opt.level_window).ns // step) if opt.level_window else 0
    if around:
        n_slots = sl.n
        p_key = x_sym * n_slots + p_start          # sorted: gaps by symbol, then time
        p_cum = np.r_[0, np.cumsum(p_len)]

        def missing_before(key: np.ndarray) -> np.ndarray:
            i = np.searchsorted(p_key, key, side="right") - 1
            ic = np.maximum(i, 0)
            part = np.minimum(key - p_key[ic], p_len[ic]) if n_p else np.zeros(len(key))
            return np.where(i >= 0, p_cum[ic] + part, 0)

        lo = np.maximum(s_first[g_ses], g_slot0 - around)
        hi = np.minimum(s_last[g_ses], g_slot0 + g_n + around)
        base_key = g_sym * n_slots
        missing_near = missing_before(base_key + hi) - missing_before(base_key + lo)
        others = hi - lo - g_n
        usual_near = _usual_between(sl, rate, g_sym, lo, hi) - usual_in_gap
        near = np.clip((hi - lo - missing_near) / np.maximum(usual_near, 1e-9), 0.05, 1.0)
        level = np.where(others >= MIN_AROUND, near, level)
        del p_key, p_cum   # piece arrays are freed as soon as done: they are the peak
    x_act = x_rate * level[p_gap]
    log_quiet = np.bincount(p_gap, weights=np.log(np.maximum(1.0 - x_act, 1e-12)) * p_len,
                            minlength=len(g_all))
    activity = np.bincount(p_gap, weights=x_act * p_len, minlength=len(g_all)) / g_n
    del x_rate, x_act
    # Cross-section: symbols that normally have bars in a slot, and those of them missing it.
    active = (rate >= opt.active_rate) & mine[:, None]
    delta = np.zeros((n_k + 1, n_b), np.int64)   # symbols active there, by session runs
    np.add.at(delta, m_k0, active[m_sym].astype(np.int64))
    np.subtract.at(delta, m_k1, active[m_sym].astype(np.int64))
    n_active_kb = np.cumsum(delta[:n_k], axis=0).astype(np.float64)      # [K, B]
    # Per piece of slots that some symbol misses (``u``; ``inv`` maps the gaps' pieces to
    # them: pieces that start together end together).
    u, inv, u_len = _starts(p_start, p_len, sl.n)
    r_u = sl.run_of(u)
    n_active = n_active_kb[sl.run_session[r_u], sl.run_bucket[r_u]]
    missing_active = np.bincount(inv, weights=active[x_sym, x_b], minlength=len(u))
    with np.errstate(divide="ignore", invalid="ignore"):
        share_slot = np.where(n_active >= opt.outage_min_symbols,
                              missing_active / np.maximum(n_active, 1.0), np.nan)
    outage_slot = ((missing_active >= opt.outage_min_symbols)
                   & (np.nan_to_num(share_slot) >= opt.outage_share))
    x_share = share_slot[inv]
    known = ~np.isnan(x_share)
    n_known = np.bincount(p_gap, weights=known * p_len, minlength=len(g_all))
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(n_known > 0, np.bincount(p_gap,
                                                  weights=np.where(known, x_share, 0.0) * p_len,
                                                  minlength=len(g_all)) / n_known, np.nan)
    del x_share, known
    outage_part = np.bincount(p_gap, weights=outage_slot[inv] * p_len,
                              minlength=len(g_all)) / g_n
    del inv, r_u, n_active, missing_active, share_slot, x_b
    # A symbol with a bar in an outage slot next to its gap was trading through the outage:
    # its gap there is its own (quiet or not), not the feed's.
    n_w = np.diff(np.r_[sl.window_first, sl.n])

    # Pieces do not overlap (cut at every gap's start and end), so a slot is in an outage
    # piece when the last outage piece that starts at or before it holds it: searched among
    # the outage pieces only (a few), not all of them.
    o_start, o_len = u[outage_slot], u_len[outage_slot]

    def outage_at(g: np.ndarray) -> np.ndarray:
        if not len(o_start):
            return np.zeros(len(g), bool)
        pos = np.searchsorted(o_start, g, side="right") - 1
        posc = np.maximum(pos, 0)
        return (pos >= 0) & (g < o_start[posc] + o_len[posc])

    before, after = g_slot0 - 1, g_slot0 + g_n
    alive = (((before >= sl.window_first[g_win]) & outage_at(before))
             | ((after < sl.window_first[g_win] + n_w[g_win]) & outage_at(after)))
    # Halts: the slots of each piece inside a halt, counted (a piece lies in one window).
    halted = np.zeros(n_p, np.int64)
    if halts is not None and len(halts):
        index = {s: i for i, s in enumerate(run.symbols)}
        for symbol, a, b in zip(halts.symbol, halts.start_ns.tolist(), halts.end_ns.tolist()):
            if symbol == "*":
                lo_x, hi_x = 0, n_p
            elif symbol in index:  # the pieces of a symbol's gaps are contiguous (sorted)
                lo_x, hi_x = np.searchsorted(x_sym, [index[symbol], index[symbol] + 1])
            else:
                continue
            x_ns = sl.ns_of(p_start[lo_x:hi_x])
            n_x = p_len[lo_x:hi_x]
            i_a = np.clip(-((x_ns - a) // step), 0, n_x)     # first slot at or after a
            i_b = np.clip(-((x_ns - b) // step), 0, n_x)     # first slot at or after b
            halted[lo_x:hi_x] += np.maximum(i_b - i_a, 0)
        halted = np.minimum(halted, p_len)
    halt_part = np.bincount(p_gap, weights=halted, minlength=len(g_all)) / g_n
    # Edges: the symbol's first and last expected slot of the session.
    first = np.maximum(opens[g_ses], run.since_ns[g_sym, g_ses])
    last = np.minimum(closes[g_ses], run.until_ns[g_sym, g_ses])
    at_start = g_start <= first
    at_end = t.gap_end[g_all] >= last
    loud = log_quiet < np.log(opt.quiet_alpha)
    kind = np.full(len(g_all), NO_TRADE, np.int8)
    kind[loud] = OUTAGE
    kind[loud & at_end & ~at_start] = EARLY_END
    kind[loud & at_start & ~at_end] = LATE_START
    kind[(outage_part >= 0.5) & ~alive] = OUTAGE
    kind[halt_part >= 0.5] = HALT
    t.gap_kind[g_all] = kind
    t.gap_activity[g_all] = activity
    t.gap_share[g_all] = share


# Above this many missing slots in one table, gaps are classified by pieces (runs of slots
# with the same inputs) rather than slot by slot: work and memory then follow the gaps and
# the sessions (a symbol silent for 30 years on a 24/7 calendar is 16M missing 1m slots, and
# ~11,000 one-gap sessions).  Below it the sums run slot by slot, in the order they always
# have, so every value is what it was; above it a sum over a piece is ``length * value``
# where it was ``length`` additions of ``value``: equal but for the last bits of a float.
SLOT_BUDGET = 1 << 21


def _pieces(slot0: np.ndarray, n: np.ndarray, sl: _Slots, total: int,
            extra: np.ndarray | None = None, budget: int | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gaps ``[slot0, slot0 + n)`` cut into pieces: ``(gap, first slot, length)``.

    Slot by slot (length 1) while ``total`` is within ``budget`` (default
    :data:`SLOT_BUDGET`); beyond it, each gap is cut at every run start of ``sl`` (a
    bucket or window changes) and at every gap start and end (of any symbol, so the
    symbols missing a piece are the same along it, and two pieces that start together end
    together) and at the slots ``extra`` (where a halt begins or ends): as many pieces as
    buckets, gaps and halts, whatever the number of slots."""
    g = len(n)
    if total <= (SLOT_BUDGET if budget is None else budget):
        gap_of = np.repeat(np.arange(g), n)
        ramp = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
        slot = np.minimum(np.repeat(slot0, n) + ramp, sl.n - 1)
        return gap_of, slot, np.ones(total, np.int64)
    end = np.minimum(slot0 + n, sl.n)
    cuts = _sorted_unique(np.r_[slot0, end, sl.run_start,
                                extra if extra is not None else np.zeros(0, np.int64)])
    i_lo = np.searchsorted(cuts, slot0, side="right")      # the first cut inside the gap
    i_hi = np.searchsorted(cuts, end, side="left")        # ... past the last one
    m = np.maximum(i_hi - i_lo, 0) + 1
    gap_of = np.repeat(np.arange(g), m)
    j = np.arange(int(m.sum()), dtype=np.int64) - np.repeat(np.cumsum(m) - m, m)
    lo_of = i_lo[gap_of]
    start = np.where(j == 0, slot0[gap_of], cuts[np.clip(lo_of + j - 1, 0, len(cuts) - 1)])
    stop = np.where(j == m[gap_of] - 1, end[gap_of], cuts[np.clip(lo_of + j, 0, len(cuts) - 1)])
    del j, lo_of, cuts
    return gap_of, start.astype(np.int64), (stop - start).astype(np.int64)


def _starts(p_start: np.ndarray, p_len: np.ndarray, n: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct first slots of the pieces (sorted), each piece's index among them, and
    their lengths (pieces that start together end together): ``np.unique`` with its
    inverse, by a mark per slot within the slot budget (a sort of every piece otherwise)."""
    if 0 < n <= SLOT_BUDGET and len(p_start) and 0 <= p_start.min() and p_start.max() < n:
        seen = np.zeros(n, bool)
        seen[p_start] = True
        u = np.flatnonzero(seen)
        inv = (np.cumsum(seen) - 1)[p_start]
        u_len = np.empty(len(u), np.int64)
        u_len[inv] = p_len
        return u.astype(p_start.dtype, copy=False), inv, u_len
    u, first, inv = np.unique(p_start, return_index=True, return_inverse=True)
    return u, inv, p_len[first]


def _slot_of(sl: _Slots, ns: np.ndarray) -> np.ndarray:
    """The first slot that starts at or after each instant (within its window)."""
    w = np.clip(np.searchsorted(sl.window_open, ns, side="right") - 1, 0, None)
    n_w = np.diff(np.r_[sl.window_first, sl.n])
    return sl.window_first[w] + np.clip(-((sl.window_open[w] - ns) // sl.step_ns), 0, n_w[w])


def _member_runs(member: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The runs of consecutive member sessions of each symbol: ``(symbol, first, end)``,
    sorted by symbol, then session (``member[s, first:end]`` all true)."""
    n_s, n_k = member.shape
    padded = np.zeros((n_s, n_k + 2), bool)
    padded[:, 1:-1] = member
    # Where membership changes: a row's changes alternate start, end (it begins outside).
    sym, at = np.nonzero(padded[:, 1:] != padded[:, :-1])
    return sym[0::2], at[0::2], at[1::2]


def _rate_times_slots(rate: np.ndarray, e_kb: np.ndarray) -> np.ndarray:
    """``rate @ e_kb.T`` (bars each symbol's usual activity expects per session) summed over
    the buckets in their order, one bucket at a time: no BLAS (see ``_classify_table``), and
    the same bits on every machine (a dgemm's rounding depends on the CPU's kernel).
    Sessions of the same hours have the same row of ``e_kb``: each distinct row is summed
    once (a few: full days, half days), then handed to its sessions."""
    if not e_kb.shape[0]:
        return np.zeros((rate.shape[0], 0))
    rows, inv = np.unique(e_kb, axis=0, return_inverse=True)
    out = np.zeros((rate.shape[0], rows.shape[0]))
    for b in range(rate.shape[1]):
        out += rate[:, b, None] * rows[None, :, b]
    return out[:, inv.reshape(-1)]


def _usual_between(sl: _Slots, rate: np.ndarray, sym: np.ndarray, lo: np.ndarray,
                   hi: np.ndarray) -> np.ndarray:
    """Bars expected by each symbol's usual activity in the slots ``[lo, hi)``: a cumulative
    sum of ``rate * length`` over the runs of one bucket (symbols x runs, small) and the
    part of a run give the sum up to any slot."""
    cum = np.zeros((rate.shape[0], len(sl.run_start) + 1))
    np.cumsum(rate[:, sl.run_bucket] * sl.run_len, axis=1, out=cum[:, 1:])

    def upto(g: np.ndarray) -> np.ndarray:
        r = sl.run_of(g)
        return cum[sym, r] + (g - sl.run_start[r]) * rate[sym, sl.run_bucket[r]]

    return upto(hi) - upto(lo)
