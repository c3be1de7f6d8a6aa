"""The gap classification as it was written in NumPy before its sums were compiled
(``sessiondata._core.classify``): the reference that ``tests/test_classify_kernel.py`` holds the
library equal to, bit for bit.  What the two share (the options, the halts, the slot layout,
the pieces) is imported from :mod:`sessiondata.classify`, not copied; what is here is the
computation the kernels replaced: ``_classify_table`` and the helpers it called in NumPy."""

from __future__ import annotations

import types
from typing import TYPE_CHECKING

import numpy as np
import sessiondata.classify as _library
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
    from sessiondata.results import IntervalTable, RunResult

from sessiondata.classify import (  # noqa: F401 - shared with the library, used below
    _EPOCH,
    MIN_AROUND,
    SLOT_BUDGET,
    ClassifyOptions,
    Halts,
    _empty_columns,
    _inherit,
    _instant_ns,
    _member_runs,
    _offset_s,
    _pieces,
    _set_lost,
    _slot_of,
    _Slots,
    _sorted_unique,
)

# The library's ``classify_run`` over this module's ``_classify_table`` (and helpers): the
# same driver, the NumPy sums.
classify_run = types.FunctionType(_library.classify_run.__code__, globals(), "classify_run",
                                  _library.classify_run.__defaults__)










# -- the pass -------------------------------------------------------------------------------












def _slots(run: RunResult, step_ns: int, bucket_ns: int) -> _Slots:
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






def _classify_table(run: RunResult, t: IntervalTable, name: str, mine: np.ndarray,
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
