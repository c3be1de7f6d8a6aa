# Anomaly kernels: the per-bar passes behind sessiondata.anomalies (issue 22).
#
# Each kernel reads one symbol's columns (sorted by time) and writes codes, runs or per-session
# reductions; thresholds arrive as arguments and every decision that needs more than one
# session's worth of numbers (jumps, volume levels, clock shifts, which sessions repeat) is
# taken in Python over the per-session arrays these kernels return.

from libc.math cimport INFINITY, NAN, exp, fabs, frexp, isfinite, log, sqrt
from libc.stdint cimport INT32_MAX, UINT64_MAX, int32_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

import numpy as np

from common cimport GridCursor, f64, grid_locate, i64, slot_index, u64

# Session and bucket indices are int32: half the memory traffic of int64 on every pass.
ctypedef int32_t i32

# Bits of bar_flags' output.  The numbers are part of the Python API (sessiondata.anomalies).
cdef enum:
    FLAG_FLAT = 1        # open == high == low == close
    FLAG_AT_PREV = 2     # flat at the previous bar's close
    FLAG_ZERO_VOL = 4    # volume == 0
    FLAG_POS_VOL = 8     # volume > 0
    FLAG_REPEAT = 16     # every field equal to the previous bar's, same session
    FLAG_NEXT = 32       # the slot right after the previous bar's, same session


def locate_bars(const i64[::1] ts, const i64[::1] w_open, const i64[::1] w_close,
                const i64[::1] w_session, const i64[::1] s_first_open, i64 bucket_ns,
                i32[::1] out_session, i32[::1] out_bucket):
    """Each bar's session index and time-of-day bucket (int32; a bucket past INT32_MAX is
    clipped to it).

    The bucket is the slot of ``bucket_ns`` from the session's first open that holds the bar
    (``slot_index`` of common.pxd): time since that open, so a session that opens the evening
    before keeps its own clock.  Bars outside every window get session and bucket -1.  ``ts``
    sorted; the windows sorted, each session's first open at or before its windows' opens.
    Returns the bars outside.
    """
    cdef Py_ssize_t n = ts.shape[0], nw = w_open.shape[0], i, outside = 0
    cdef i64 k
    cdef u64 q
    cdef GridCursor g
    if out_session.shape[0] != n or out_bucket.shape[0] != n:
        raise ValueError("locate_bars: output lengths differ from ts")
    if w_close.shape[0] != nw or w_session.shape[0] != nw:
        raise ValueError("locate_bars: window arrays differ in length")
    if bucket_ns <= 0:
        raise ValueError(f"locate_bars: bucket_ns must be > 0, got {bucket_ns}")
    if s_first_open.shape[0] >= INT32_MAX:
        raise ValueError("locate_bars: more sessions than int32 indices hold")
    for i in range(nw):
        if w_session[i] < 0 or w_session[i] >= s_first_open.shape[0]:
            raise ValueError(f"locate_bars: window {i} names session {w_session[i]}, "
                             f"outside the {s_first_open.shape[0]} sessions")
        if w_open[i] < s_first_open[w_session[i]]:
            raise ValueError(f"locate_bars: window {i} opens before its session "
                             f"{w_session[i]}'s first open")
    g.window = 0
    with nogil:
        for i in range(n):
            # step 0: the window is the slot; only where the bar falls is wanted here
            if nw > 0 and grid_locate(&g, &w_open[0], &w_close[0], nw, 0, ts[i]):
                k = w_session[g.window]
                out_session[i] = <i32> k
                q = slot_index(s_first_open[k], bucket_ns, ts[i])
                out_bucket[i] = <i32> q if q < <u64> INT32_MAX else INT32_MAX
            else:
                out_session[i] = -1
                out_bucket[i] = -1
                outside += 1
    return outside


cdef inline u64 _mix(u64 z) noexcept nogil:
    # splitmix64's finaliser: every input bit moves every output bit
    z = (z ^ (z >> 30)) * <u64> 0xbf58476d1ce4e5b9
    z = (z ^ (z >> 27)) * <u64> 0x94d049bb133111eb
    return z ^ (z >> 31)


cdef inline u64 _bits(f64 x) noexcept nogil:
    cdef u64 u
    if x == 0.0:
        x = 0.0     # -0.0 and 0.0 hash alike
    memcpy(&u, &x, sizeof(u64))
    return u


def bar_flags(const i64[::1] ts, const f64[::1] open, const f64[::1] high,
              const f64[::1] low, const f64[::1] close, const f64[::1] volume,
              const i32[::1] session, const i32[::1] bucket, i64 step_ns, f64 ref_volume,
              uint8_t[::1] out, uint8_t[::1] out_class, i64[:, :, ::1] out_counts,
              u64[::1] out_hash, f64[:, ::1] out_by_class, f64[:, ::1] out_by_range):
    """The FLAG_* bits of every bar (see the module); volume may be NaN (neither bit).

    ``out_class`` is the bar's volume class: ``floor(log2(volume / ref_volume)) + 4``
    clipped to 1..7 for positive volume, 0 otherwise (or when ``ref_volume`` is not positive).
    ``out_counts[bucket, class, flags]`` counts the bars of each bucket (0 <= bucket <
    ``out_counts.shape[0]``) by class and flags; it must be (buckets, 8, 64) and is added to.
    ``out_hash`` is a 64-bit hash of the bar's five values (not its time).  The activity
    profiles are added to, at ``[session, bucket]`` when both are inside the array:
    ``out_by_class`` the volume class, ``out_by_range`` the range over the close (when
    finite and positive).  One pass: the columns are read once for all of it.
    """
    cdef Py_ssize_t n = ts.shape[0], i, nb = out_counts.shape[0]
    cdef Py_ssize_t pk = out_by_class.shape[0], pb = out_by_class.shape[1]
    cdef uint8_t f
    cdef f64 o, c, vi, vp, rg, r
    cdef int cls, e
    cdef i64 b, k
    cdef u64 z, rb
    if not (open.shape[0] == high.shape[0] == low.shape[0] == close.shape[0]
            == volume.shape[0] == session.shape[0] == bucket.shape[0] == out.shape[0]
            == out_class.shape[0] == n):
        raise ValueError("bar_flags: columns differ in length")
    if out_hash.shape[0] != n:
        raise ValueError("bar_flags: out_hash differs in length from the columns")
    if out_by_range.shape[0] != pk or out_by_range.shape[1] != pb:
        raise ValueError("bar_flags: out_by_class and out_by_range differ in shape")
    if out_counts.shape[1] != 8 or out_counts.shape[2] != 64:
        raise ValueError("bar_flags: out_counts must be (buckets, 8, 64), got "
                         f"({out_counts.shape[0]}, {out_counts.shape[1]}, "
                         f"{out_counts.shape[2]})")
    with nogil:
        for i in range(n):
            f = 0
            o = open[i]
            c = close[i]
            if o == high[i] and o == low[i] and o == c:
                f |= FLAG_FLAT
                if i > 0 and o == close[i - 1]:
                    f |= FLAG_AT_PREV
            vi = volume[i]
            cls = 0
            if vi == 0.0:
                f |= FLAG_ZERO_VOL
            elif vi > 0.0:
                f |= FLAG_POS_VOL
                if ref_volume > 0.0:
                    # the class by the binary exponent of the ratio: no log on the bar path;
                    # frexp's exponent, read from the bits where the ratio is a normal number
                    # (frexp is a call into libc: a tenth of this pass)
                    r = vi / ref_volume             # ratio in [2**(e-1), 2**e)
                    memcpy(&rb, &r, sizeof(u64))
                    rb = (rb >> 52) & 0x7ff
                    if rb != 0 and rb != 0x7ff:
                        e = <int> rb - 1022
                    else:
                        frexp(r, &e)
                    cls = e + 3
                    if cls < 1:
                        cls = 1
                    elif cls > 7:
                        cls = 7
            out_class[i] = cls
            if i > 0 and session[i] == session[i - 1]:
                vp = volume[i - 1]
                if (o == open[i - 1] and high[i] == high[i - 1] and low[i] == low[i - 1]
                        and c == close[i - 1] and (vi == vp or (vi != vi and vp != vp))):
                    f |= FLAG_REPEAT
                if ts[i] - ts[i - 1] == step_ns:
                    f |= FLAG_NEXT
            out[i] = f
            b = bucket[i]
            if 0 <= b < nb:
                out_counts[b, cls, f] += 1
            k = session[i]
            if 0 <= k < pk and 0 <= b < pb:
                out_by_class[k, b] += cls
                if c > 0.0:
                    rg = (high[i] - low[i]) / c
                    if isfinite(rg) and rg > 0.0:
                        out_by_range[k, b] += rg
            # each field times its own odd constant (a bijection), summed, then mixed once
            z = (_bits(o) * <u64> 0x9e3779b97f4a7c15
                 + _bits(high[i]) * <u64> 0xc2b2ae3d27d4eb4f
                 + _bits(low[i]) * <u64> 0x165667b19e3779f9
                 + _bits(c) * <u64> 0xd6e8feb86659fd93
                 + _bits(vi) * <u64> 0xff51afd7ed558ccd)
            out_hash[i] = _mix(z)
    return None


def find_runs(const uint8_t[::1] flags, int need, int forbid, int link,
              const i32[::1] session, const i32[::1] bucket, const uint8_t[::1] klass,
              const f64[:, ::1] weight,
              Py_ssize_t min_len, f64 max_weight, i64[::1] out_first, i64[::1] out_len,
              f64[::1] out_weight):
    """Runs of bars whose flags hold every bit of ``need`` and none of ``forbid``, every bar
    after the first also every bit of ``link``, all in one session (>= 0).

    A run is written when it has ``min_len`` bars or more and the sum of
    ``weight[bucket, klass]`` over its bars (a log-probability, say) is at most ``max_weight``.  Returns the runs
    written; more than the outputs hold raise ValueError (``n // min_len + 1`` suffices).
    """
    cdef Py_ssize_t n = flags.shape[0], nb = weight.shape[0], nc = weight.shape[1]
    cdef Py_ssize_t cap = out_first.shape[0]
    cdef Py_ssize_t i, a = -1, m = 0
    cdef f64 acc = 0.0
    cdef i64 b
    cdef bint ok, over = False
    if session.shape[0] != n or bucket.shape[0] != n or klass.shape[0] != n:
        raise ValueError("find_runs: flags, session, bucket and klass differ in length")
    if out_len.shape[0] != cap or out_weight.shape[0] != cap:
        raise ValueError("find_runs: outputs differ in length")
    if min_len < 1:
        raise ValueError(f"find_runs: min_len must be >= 1, got {min_len}")
    with nogil:
        for i in range(n + 1):
            ok = (i < n and session[i] >= 0 and (flags[i] & need) == need
                  and (flags[i] & forbid) == 0)
            if a >= 0 and not (ok and (flags[i] & link) == link
                               and session[i] == session[i - 1]):
                # The run [a, i) ends here; bar i may start the next one.
                if i - a >= min_len and acc <= max_weight:
                    if m >= cap:
                        over = True
                        break
                    out_first[m] = a
                    out_len[m] = i - a
                    out_weight[m] = acc
                    m += 1
                a = -1
            if ok:
                if a < 0:
                    a = i
                    acc = 0.0
                b = bucket[i]
                if 0 <= b < nb and klass[i] < nc:
                    acc += weight[b, klass[i]]
    if over:
        raise ValueError(f"find_runs: more runs than the {cap} the outputs hold")
    return m


cdef inline void _swap(f64* x, Py_ssize_t i, Py_ssize_t j) noexcept nogil:
    cdef f64 t = x[i]
    x[i] = x[j]
    x[j] = t


cdef f64 _select(f64* x, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """The k-th smallest of x[0:n] (0-based), reordering x (Hoare's quickselect)."""
    cdef Py_ssize_t lo = 0, hi = n - 1, i, j, mid
    cdef f64 p
    while hi > lo:
        mid = lo + (hi - lo) // 2
        # median of three as the pivot, so sorted runs do not go quadratic
        if x[mid] < x[lo]:
            _swap(x, mid, lo)
        if x[hi] < x[lo]:
            _swap(x, hi, lo)
        if x[hi] < x[mid]:
            _swap(x, hi, mid)
        p = x[mid]
        i = lo
        j = hi
        while i <= j:
            while x[i] < p:
                i += 1
            while x[j] > p:
                j -= 1
            if i <= j:
                _swap(x, i, j)
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return x[k]
    return x[k]


cdef inline f64 _median(const f64* src, Py_ssize_t n, f64* scratch) noexcept nogil:
    """The median of n > 0 values (the lower middle one for even n)."""
    memcpy(scratch, src, n * sizeof(f64))
    return _select(scratch, n, (n - 1) // 2)


cdef inline f64 _dev(f64 x, f64 ref) noexcept nogil:
    """|log(x / ref)| for positive prices, infinite otherwise."""
    if x > 0.0 and ref > 0.0:
        return fabs(log(x / ref))
    return 1e300


cdef f64 _block_scale(const f64[::1] close, Py_ssize_t b, Py_ssize_t block, Py_ssize_t n,
                      f64 tick, f64* buf) noexcept nogil:
    """The scale of block b: the 75th percentile of its absolute relative moves over 1.15,
    at least their mean and half the tick."""
    cdef Py_ssize_t lo = b * block, hi = lo + block, i, cnt = 0
    cdef f64 d, mean = 0.0, s
    if hi > n:
        hi = n
    for i in range(lo if lo > 0 else 1, hi):
        if close[i] > 0.0 and close[i - 1] > 0.0:
            d = fabs(close[i] - close[i - 1]) / close[i - 1]
            buf[cnt] = d
            cnt += 1
            mean += d
    s = _select(buf, cnt, (3 * cnt) // 4) / 1.15 if cnt > 0 else 0.0
    # Where most bars do not move (a quiet or coarse-ticked market) the percentile is 0:
    # the mean move and half the tick bound the scale.
    if cnt > 0 and s < mean / cnt:
        s = mean / cnt
    if s < 0.5 * tick:
        s = 0.5 * tick
    return s


def find_spikes(const f64[::1] high, const f64[::1] low, const f64[::1] close,
                const f64[::1] volume, const i32[::1] session, Py_ssize_t block, f64 k_sigma,
                f64 min_rel, Py_ssize_t ref_bars, Py_ssize_t max_bars, f64 volume_ratio,
                i64[::1] out_first,
                i64[::1] out_len, f64[::1] out_price, f64[::1] out_ref, f64[::1] out_score):
    """Bad prints: bars whose high, low or close leave the local robust range and come back.

    The local scale of bar i is the 75th percentile of the absolute log returns of its block
    of ``block`` bars over 1.15 (the standard deviation for normal returns, robust to a
    quarter of outliers); its threshold is ``max(k_sigma * scale, min_rel)``.  Its reference is
    the median of the ``ref_bars`` closes before it.  A spike starts at a bar whose high, low
    or close is off the reference by more than the threshold, and lasts while the bars stay off
    by more than half of it, at most ``max_bars`` bars; it counts when the median of the
    ``ref_bars // 2`` closes after it is back within the threshold of the reference (a move
    that stays is not a spike).  Nor is a move on volume: when a bar of it trades more than
    ``volume_ratio`` times the median volume of the ``ref_bars`` bars before (news moves the
    market on volume; a bad print is one trade), unless ``volume_ratio`` <= 0 or the volume
    is NaN.  Bars outside the sessions (session < 0) are not looked at.
    Where the percentile is 0 (most bars do not move) the scale is the mean absolute return,
    and never below half the smallest move of the block (a tick; a block where no close
    moved takes the tick of the nearest block before it, else after it; the tick is the
    smallest of the block's and its two neighbours'), nor below the next block's scale
    (computed the same way).  ``out_score`` is the
    deviation in scales.  Returns the spikes written.
    """
    cdef Py_ssize_t n = close.shape[0], cap = out_first.shape[0]
    cdef Py_ssize_t i, j, b, nb, lo, hi, m = 0, cnt, half, w
    cdef f64* scale = NULL
    cdef f64* screen = NULL
    cdef f64* low_s = NULL
    cdef f64* ticks = NULL
    cdef f64* buf = NULL
    cdef f64 ref, thr, d, dh, dl, dc, ext, after, s, tick, mean, up, prev, vmed
    cdef bint over = False, loud
    if not (high.shape[0] == low.shape[0] == session.shape[0] == volume.shape[0] == n):
        raise ValueError("find_spikes: columns differ in length")
    if not (out_len.shape[0] == out_price.shape[0] == out_ref.shape[0]
            == out_score.shape[0] == cap):
        raise ValueError("find_spikes: outputs differ in length")
    if block < 4 or ref_bars < 2 or max_bars < 1:
        raise ValueError(f"find_spikes: block >= 4, ref_bars >= 2 and max_bars >= 1 needed, "
                         f"got {block}, {ref_bars}, {max_bars}")
    if n == 0:
        return 0
    half = ref_bars // 2
    if half < 1:
        half = 1
    nb = (n + block - 1) // block
    # per block: the lower bound of the scale (the mean move and half the tick, without the
    # percentile), the screen made from it, the tick, and the scale itself (-1 until needed)
    scale = <f64*> malloc(nb * sizeof(f64))
    screen = <f64*> malloc(nb * sizeof(f64))
    low_s = <f64*> malloc(nb * sizeof(f64))
    ticks = <f64*> malloc(nb * sizeof(f64))
    buf = <f64*> malloc((block + ref_bars + 1) * sizeof(f64))
    if scale == NULL or screen == NULL or buf == NULL or low_s == NULL or ticks == NULL:
        free(scale)
        free(screen)
        free(low_s)
        free(ticks)
        free(buf)
        raise MemoryError()
    with nogil:
        for b in range(nb):
            lo = b * block
            hi = lo + block
            if hi > n:
                hi = n
            cnt = 0
            tick = 0.0
            mean = 0.0
            for i in range(lo if lo > 0 else 1, hi):
                if close[i] > 0.0 and close[i - 1] > 0.0:
                    # relative change: the log return to first order, without a log
                    d = fabs(close[i] - close[i - 1]) / close[i - 1]
                    cnt += 1
                    mean += d
                    if d > 0.0 and (tick == 0.0 or d < tick):
                        tick = d
            low_s[b] = mean / cnt if cnt > 0 else 0.0
            ticks[b] = tick
            scale[b] = -1.0
        # A block where no close moved has no tick of its own: it takes the nearest block's
        # before it (else after it), so that a one-tick move after an hour of flat bars is
        # measured in ticks, as in a block where the price moved once (a thin symbol's flat
        # hours were full of one-tick "spikes").
        tick = 0.0
        for b in range(nb):
            if ticks[b] > 0.0:
                tick = ticks[b]
            else:
                ticks[b] = tick
        tick = 0.0
        for b in range(nb - 1, -1, -1):
            if ticks[b] > 0.0:
                tick = ticks[b]
            else:
                ticks[b] = tick
        # The tick is the market's, not the block's: the smallest of this block's and its
        # neighbours' (a block whose only move is a bad print and its return has that print
        # for its "tick").
        prev = ticks[0]
        for b in range(nb):
            d = ticks[b]
            if prev < ticks[b]:
                ticks[b] = prev
            if b + 1 < nb and ticks[b + 1] < ticks[b]:
                ticks[b] = ticks[b + 1]
            prev = d
        # The scale is max(percentile / 1.15, mean, tick / 2) of the block and of the next
        # one; without the percentile it is a lower bound, and a bar within the screen made
        # from that bound is within the true one: the percentile (a select, most of this
        # kernel's time) is taken only for the blocks of the few bars that leave it.
        for b in range(nb):
            s = low_s[b]
            if s < 0.5 * ticks[b]:
                s = 0.5 * ticks[b]
            low_s[b] = s
        for b in range(nb):
            if b + 1 < nb and low_s[b + 1] > low_s[b]:
                low_s[b] = low_s[b + 1]
            thr = k_sigma * low_s[b]
            if thr < min_rel:
                thr = min_rel
            screen[b] = exp(0.5 * thr)
        i = ref_bars
        while i < n - half:
            if session[i] < 0:
                i += 1
                continue
            # A cheap screen against the previous close, at half the threshold, before the
            # median is taken (no log: compared as ratios); first with the lower bound of
            # the scale, then with the scale itself.
            b = i // block
            up = screen[b]
            prev = close[i - 1]
            if high[i] <= prev * up and low[i] * up >= prev and prev > 0.0:
                i += 1
                continue
            if scale[b] < 0.0:
                s = _block_scale(close, b, block, n, ticks[b], buf)
                if b + 1 < nb:
                    up = _block_scale(close, b + 1, block, n, ticks[b + 1], buf)
                    if up > s:
                        s = up
                scale[b] = s
            s = scale[b]
            thr = k_sigma * s
            if thr < min_rel:
                thr = min_rel
            up = exp(0.5 * thr)
            if high[i] <= prev * up and low[i] * up >= prev and prev > 0.0:
                i += 1
                continue
            ref = _median(&close[i - ref_bars], ref_bars, buf)
            dh = _dev(high[i], ref)
            dl = _dev(low[i], ref)
            dc = _dev(close[i], ref)
            d = dh
            ext = high[i]
            if dl > d:
                d = dl
                ext = low[i]
            if dc > d:
                d = dc
                ext = close[i]
            if d <= thr:
                i += 1
                continue
            j = i + 1
            while j < n and j - i < max_bars + 1:
                if (_dev(high[j], ref) <= 0.5 * thr and _dev(low[j], ref) <= 0.5 * thr
                        and _dev(close[j], ref) <= 0.5 * thr):
                    break
                dh = _dev(high[j], ref)
                if dh > d:
                    d = dh
                    ext = high[j]
                dl = _dev(low[j], ref)
                if dl > d:
                    d = dl
                    ext = low[j]
                j += 1
            if j - i > max_bars or j + half > n:
                i += 1
                continue
            if volume_ratio > 0.0:
                vmed = _median(&volume[i - ref_bars], ref_bars, buf)
                loud = False
                for b in range(i, j):
                    if volume[b] > volume_ratio * vmed:
                        loud = True
                if loud:
                    i = j
                    continue
            w = half
            after = _median(&close[j], w, buf)
            if _dev(after, ref) > thr:
                i += 1          # a move that stays
                continue
            if m >= cap:
                over = True
                break
            out_first[m] = i
            out_len[m] = j - i
            out_price[m] = ext
            out_ref[m] = ref
            out_score[m] = d / s if s > 0.0 else 1e300
            m += 1
            i = j
    free(scale)
    free(screen)
    free(low_s)
    free(ticks)
    free(buf)
    if over:
        raise ValueError(f"find_spikes: more spikes than the {cap} the outputs hold")
    return m


def session_stats(const i32[::1] session, const f64[::1] volume, const uint8_t[::1] flags,
                  i64[::1] out_first, i64[::1] out_count, f64[::1] out_med_volume,
                  i64[::1] out_zero_volume, i64[::1] out_filled):
    """Per session (``session`` sorted where >= 0, negative ones skipped): the first bar's
    index (-1 without bars), the bars, the median of the positive volumes (-1 without one;
    over more than 256 of them, the median of every ``npos // 128``-th, in order: the
    level, within a few percent, at a third of the select's cost on a 390-bar session),
    the bars with zero volume and those flat at the previous close with zero volume."""
    cdef Py_ssize_t n = session.shape[0], ns = out_first.shape[0], i, a, k, cnt, npos
    cdef Py_ssize_t last = -1
    cdef f64* buf = NULL
    cdef bint bad = False
    if volume.shape[0] != n or flags.shape[0] != n:
        raise ValueError("session_stats: columns differ in length")
    if not (out_count.shape[0] == out_med_volume.shape[0] == out_zero_volume.shape[0]
            == out_filled.shape[0] == ns):
        raise ValueError("session_stats: outputs differ in length")
    buf = <f64*> malloc((n + 1) * sizeof(f64))
    if buf == NULL:
        raise MemoryError()
    with nogil:
        for k in range(ns):
            out_first[k] = -1
            out_count[k] = 0
            out_med_volume[k] = -1.0
            out_zero_volume[k] = 0
            out_filled[k] = 0
        i = 0
        while i < n:
            k = session[i]
            if k < 0:
                i += 1
                continue
            if k >= ns or k <= last:
                bad = True          # past the outputs, or the sessions are not sorted
                break
            last = k
            a = i
            npos = 0
            while i < n and session[i] == k:
                if volume[i] > 0.0:
                    buf[npos] = volume[i]
                    npos += 1
                elif volume[i] == 0.0:
                    out_zero_volume[k] += 1
                    if flags[i] & FLAG_AT_PREV:
                        out_filled[k] += 1
                i += 1
            out_first[k] = a
            out_count[k] = i - a
            if npos > 256:
                # the level, not the exact median: every step-th of the positive volumes
                cnt = npos // 128
                npos = npos // cnt
                for a in range(npos):
                    buf[a] = buf[a * cnt]
            out_med_volume[k] = _select(buf, npos, (npos - 1) // 2) if npos > 0 else -1.0
    free(buf)
    if bad:
        raise ValueError("session_stats: session indices must be sorted and below "
                         f"{ns} (outside bars negative)")
    return None


def session_sketches(const u64[::1] hashes, const uint8_t[::1] flags, const i32[::1] session,
                     u64[:, ::1] out):
    """The smallest ``out.shape[1]`` distinct hashes of each session's bars, ascending, flat bars
    without volume left out (they repeat across quiet sessions without being copies); unused
    entries stay UINT64_MAX."""
    cdef Py_ssize_t n = hashes.shape[0], ns = out.shape[0], s = out.shape[1], i, j, p
    cdef i64 k
    cdef u64 h
    if flags.shape[0] != n or session.shape[0] != n:
        raise ValueError("session_sketches: columns differ in length")
    with nogil:
        for k in range(ns):
            for j in range(s):
                out[k, j] = UINT64_MAX
        if s > 0:
            for i in range(n):
                k = session[i]
                if k < 0 or k >= ns or ((flags[i] & FLAG_FLAT) and not (flags[i] & FLAG_POS_VOL)):
                    continue
                h = hashes[i]
                if h >= out[k, s - 1]:
                    continue
                p = s - 1
                while p > 0 and out[k, p - 1] > h:
                    p -= 1
                if p > 0 and out[k, p - 1] == h:
                    continue
                j = s - 1
                while j > p:
                    out[k, j] = out[k, j - 1]
                    j -= 1
                out[k, p] = h
    return None


cdef f64 _median_of(f64* x, Py_ssize_t n) noexcept nogil:
    """numpy's median of x[0:n] (n > 0; the mean of the two middle values for even n),
    reordering x."""
    cdef f64 a = _select(x, n, (n - 1) // 2), b
    cdef Py_ssize_t i
    if n % 2:
        return a
    # the upper middle one: the smallest of those the select left above the lower one
    b = x[n // 2]
    for i in range(n // 2 + 1, n):
        if x[i] < b:
            b = x[i]
    return 0.5 * (a + b)


cdef f64 _masked_corr(const f64* xs, const f64* ref, const uint8_t* m_a,
                      const uint8_t* m_b, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t s,
                      bint* unsure) noexcept nogil:
    """The correlation of xs[b] and ref[b - s] over the cells lo <= b < hi where m_a[b] and
    m_b[b - s] (centred, two passes); NaN without cells; ``unsure`` set where either side
    hardly varies (numpy's sums formula is then not to be trusted to agree)."""
    cdef Py_ssize_t b, nw = 0
    cdef f64 sx = 0.0, sr = 0.0, mx, mr, dx, dr, num = 0.0, vx = 0.0, vr = 0.0
    for b in range(lo, hi):
        if m_a[b] and m_b[b - s]:
            sx += xs[b]
            sr += ref[b - s]
            nw += 1
    if nw == 0:
        return NAN
    mx = sx / nw
    mr = sr / nw
    for b in range(lo, hi):
        if m_a[b] and m_b[b - s]:
            dx = xs[b] - mx
            dr = ref[b - s] - mr
            num += dx * dr
            vx += dx * dx
            vr += dr * dr
    if vx < 1e-9 or vr < 1e-9:
        unsure[0] = True
        return NAN
    return num / sqrt(vx * vr)


cdef f64 _clock_screen(const f64[:, ::1] prof, const i64[::1] count, const i64[::1] span_ns,
                       const uint8_t[::1] weekend, i64 bucket_ns, Py_ssize_t per_hour,
                       const i64[::1] hours, f64 z_cap, Py_ssize_t max_run, f64[:, ::1] x,
                       uint8_t[:, ::1] inside, f64[:, ::1] usual, f64[::1] v, f64[::1] base,
                       f64[::1] gain, f64[::1] zz, uint8_t[::1] use, uint8_t[::1] ok,
                       f64 min_z, Py_ssize_t min_sessions, f64 eps) noexcept nogil:
    """The body of `clock_screen` (its arrays allocated by it)."""
    cdef Py_ssize_t n_k = prof.shape[0], n_b = prof.shape[1], n_h = hours.shape[0]
    cdef Py_ssize_t k, b, j, n, lo, hi, s, n_use, w_len, g_n[2], e, m
    cdef int grp, key[2]
    cdef f64 uc, tot, med, mad, z, acc, best = -INFINITY
    cdef bint unsure = False
    w_len = max_run if max_run < n_k else n_k
    # the usual count of bars: the median over the sessions with bars
    n = 0
    for k in range(n_k):
        if count[k] > 0:
            v[n] = <f64> count[k]
            n += 1
    uc = _median_of(&v[0], n) if n > 0 else 0.0
    uc = 0.5 * uc
    if uc < 10.0:
        uc = 10.0
    n_use = 0
    for k in range(n_k):
        if count[k] >= uc:
            use[k] = 1
            n_use += 1
    if n_use < 3:
        return -INFINITY
    n_use = 0
    g_n[0] = 0
    g_n[1] = 0
    for k in range(n_k):
        for b in range(n_b):
            inside[k, b] = (b * bucket_ns) < span_ns[k]
        if not use[k]:
            continue
        tot = 0.0
        for b in range(n_b):
            tot += prof[k, b]
        if not tot > 0.0:
            use[k] = 0
            continue
        for b in range(n_b):
            x[k, b] = sqrt(prof[k, b] / tot)
        n_use += 1
        g_n[1 if weekend[k] else 0] += 1
    if n_use < 3:
        return -INFINITY
    # the usual profile of each kind of day: its own sessions' where it has three and
    # is not all of them, else every session's
    for grp in range(2):
        key[grp] = grp if (g_n[grp] >= 3 and g_n[grp] < n_use) else -1
        if grp == 1 and key[1] < 0 and key[0] < 0:
            for b in range(n_b):            # one profile for every day: once
                usual[1, b] = usual[0, b]
            break
        for b in range(n_b):
            n = 0
            for k in range(n_k):
                if use[k] and (key[grp] < 0 or (weekend[k] != 0) == (grp == 1)):
                    v[n] = x[k, b]
                    n += 1
            usual[grp, b] = _median_of(&v[0], n)
    for k in range(n_k):
        base[k] = NAN
        if use[k]:
            grp = 1 if weekend[k] else 0
            base[k] = _masked_corr(&x[k, 0], &usual[grp, 0], &inside[k, 0],
                                   &inside[k, 0], 0, n_b, 0, &unsure)
    if unsure:
        return NAN
    for j in range(n_h):
        s = hours[j] * per_hour
        lo = s if s > 0 else 0
        hi = n_b + s if s < 0 else n_b
        n = 0
        for k in range(n_k):
            gain[k] = NAN
            if use[k]:
                grp = 1 if weekend[k] else 0
                gain[k] = _masked_corr(&x[k, 0], &usual[grp, 0], &inside[k, 0],
                                       &inside[k, 0], lo, hi, s, &unsure) - base[k]
                if isfinite(gain[k]):
                    v[n] = gain[k]
                    n += 1
        if unsure:
            return NAN
        if n < 3:
            continue
        med = _median_of(&v[0], n)
        n = 0
        for k in range(n_k):
            if use[k] and isfinite(gain[k]):
                v[n] = fabs(gain[k] - med)
                n += 1
        mad = 1.4826 * _median_of(&v[0], n)
        if mad < 0.005:
            mad = 0.005
        for k in range(n_k):
            zz[k] = 0.0
            ok[k] = 0
            if use[k] and isfinite(gain[k]):
                z = (gain[k] - med) / mad
                if z > z_cap:
                    z = z_cap
                elif z < -z_cap:
                    z = -z_cap
                zz[k] = z
                ok[k] = 1
        # the runs the search scores first: from and to a session that looks shifted,
        # min_sessions to max_run long, three quarters of them scored, a mean of at least
        # min_z; the thresholds eased by ``eps`` so that rounding never leaves out a run
        # the search would score
        for k in range(n_k):
            if not zz[k] >= min_z - eps:
                continue
            acc = 0.0
            n = 0
            for e in range(k, min(n_k, k + w_len)):
                acc += zz[e]
                n += ok[e]
                m = e - k + 1
                if (m < min_sessions or not zz[e] >= min_z - eps or n < min_sessions
                        or n < 0.75 * m or acc < min_z * n - eps * m):
                    continue
                z = acc / sqrt(<f64> (n if n > 1 else 1))
                if z > best:
                    best = z
    return best


def clock_screen(const f64[:, ::1] prof, const i64[::1] count, const i64[::1] span_ns,
                 const uint8_t[::1] weekend, i64 bucket_ns, Py_ssize_t per_hour,
                 const i64[::1] hours, f64 z_cap, Py_ssize_t max_run, f64 min_z,
                 Py_ssize_t min_sessions, f64 eps):
    """The best score, computed without the GIL, of the runs the clock-shift search
    (``sessiondata.anomalies._clock_shifts``) looks at first: at most ``clock_margin`` and
    the search adds nothing, so it need not run.

    The same steps as the search (the sessions used, the usual profile per kind of day as
    the median of the square roots of the shares, each session's correlation with it as
    stamped and shifted by ``hours``, the gains' median and MAD, the deviations capped at
    ``z_cap``; runs of ``min_sessions`` to ``max_run`` sessions from and to a session of
    deviation ``min_z`` or more, three quarters of them scored, a mean of ``min_z``; the
    score the sum over the square root of the sessions scored), with the correlation
    centred in two passes rather than by numpy's formulas: equal to rounding, so the
    thresholds are eased by ``eps`` and the caller keeps a margin.  ``-inf`` where no run
    qualifies or the search returns before scoring (too few sessions to use); NaN where a
    session used hardly varies over its cells (the two computations may part there: the
    caller runs the search itself).
    """
    cdef Py_ssize_t n_k = prof.shape[0], n_b = prof.shape[1], n_h = hours.shape[0], j
    cdef f64 r
    if not (count.shape[0] == span_ns.shape[0] == weekend.shape[0] == n_k):
        raise ValueError("clock_screen: per-session arrays differ in length from prof")
    if bucket_ns <= 0 or per_hour < 1 or max_run < 1:
        raise ValueError("clock_screen: bucket_ns, per_hour and max_run must be > 0")
    for j in range(n_h):
        if not -n_b < hours[j] * per_hour < n_b:
            raise ValueError(f"clock_screen: a shift of {hours[j]} h is longer than the "
                             f"{n_b} buckets of the profile")
    if n_k < 3 or n_h == 0 or n_b == 0:
        return -INFINITY
    x_a = np.zeros((n_k, n_b), np.float64)
    in_a = np.zeros((n_k, n_b), np.uint8)
    usual_a = np.zeros((2, n_b), np.float64)
    v_a = np.empty(n_k, np.float64)
    base_a = np.empty(n_k, np.float64)
    gain_a = np.empty(n_k, np.float64)
    z_a = np.empty(n_k, np.float64)
    use_a = np.zeros(n_k, np.uint8)
    ok_a = np.zeros(n_k, np.uint8)
    cdef f64[:, ::1] x = x_a, usual = usual_a
    cdef uint8_t[:, ::1] inside = in_a
    cdef f64[::1] v = v_a, base = base_a, gain = gain_a, zz = z_a
    cdef uint8_t[::1] use = use_a, ok = ok_a
    with nogil:
        r = _clock_screen(prof, count, span_ns, weekend, bucket_ns, per_hour, hours, z_cap,
                          max_run, x, inside, usual, v, base, gain, zz, use, ok, min_z,
                          min_sessions, eps)
    return r
