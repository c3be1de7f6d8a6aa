# The per-gap sums of the gap classification (``sessiondata.classify``), slot by slot or piece
# by piece.
#
# A table's missing slots come as *pieces*: runs of slots over which every input of the rules
# is the same, ``p_off[g]:p_off[g + 1]`` being the pieces of gap ``g`` in slot order (one slot
# each below the slot budget, when ``p_len`` may be empty: every piece one slot).  Python lays out the grid (runs of one window and one bucket),
# the sessions and the thresholds; these kernels make the sums over pieces, in the order in
# which ``np.bincount``/``np.cumsum`` made them, so that every float is the same to the bit:
# a sum over a gap's pieces starts at 0.0 and adds piece after piece; a product is rounded
# before it is added (no fused multiply-add: see the pragmas below).
#
# Nothing here decides a threshold that Python did not hand in; the logarithms of the quiet
# probabilities are taken by NumPy between two kernels (``np.log`` may use its own SIMD code,
# whose last bit libm need not share).

from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport free, malloc

ctypedef int64_t i64
ctypedef double f64

cdef extern from *:
    """
    /* a*b+c must round a*b first, as NumPy's separate ufunc loops do */
    #if defined(__clang__)
    #pragma clang fp contract(off)
    #elif defined(__GNUC__)
    #pragma GCC optimize ("fp-contract=off")
    #elif defined(_MSC_VER)
    #pragma fp_contract (off)
    #endif
    """

cdef extern from "math.h" nogil:
    double NAN


# -- NumPy's element-wise rules, NaN propagating ---------------------------------------------

cdef inline f64 np_max(f64 a, f64 b) noexcept nogil:
    if a != a:
        return a
    return a if a >= b else b


cdef inline f64 np_clip(f64 x, f64 lo, f64 hi) noexcept nogil:
    if x != x:
        return x
    if x < lo:
        x = lo
    if x > hi:
        x = hi
    return x


cdef inline Py_ssize_t last_at_or_before(const i64* a, Py_ssize_t lo, Py_ssize_t hi,
                                         i64 x) noexcept nogil:
    """The last index in ``[lo, hi)`` with ``a[i] <= x`` (``a`` sorted), else ``lo - 1``."""
    cdef Py_ssize_t mid
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if a[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


cdef inline Py_ssize_t last_near(const i64* a, Py_ssize_t lo, Py_ssize_t hi, i64 x,
                                 Py_ssize_t hint) noexcept nogil:
    """``last_at_or_before(a, lo, hi, x)`` searched outwards from ``hint`` (sorted
    ``a``): the steps grow as the distance to the answer, not as the array."""
    cdef Py_ssize_t step = 1, nxt, a_lo, a_hi
    if hint >= hi:
        hint = hi - 1
    if hint < lo:
        if lo >= hi:
            return lo - 1
        hint = lo
    if a[hint] <= x:
        a_lo = hint
        while True:
            nxt = a_lo + step
            if nxt >= hi or a[nxt] > x:
                a_hi = nxt if nxt < hi else hi
                break
            a_lo = nxt
            step *= 2
        return last_at_or_before(a, a_lo + 1, a_hi, x)
    a_hi = hint
    while True:
        nxt = a_hi - step
        if nxt < lo:
            a_lo = lo
            break
        if a[nxt] <= x:
            a_lo = nxt
            break
        a_hi = nxt
        step *= 2
    return last_at_or_before(a, a_lo, a_hi, x)


cdef check_offsets(const i64[::1] p_off, Py_ssize_t n_p, str where):
    """``p_off`` must run from 0 to ``n_p`` without going back (memory safety)."""
    cdef Py_ssize_t g, n = p_off.shape[0]
    if n == 0 or p_off[0] != 0 or p_off[n - 1] != n_p:
        raise ValueError(f"{where}: p_off must run from 0 to the {n_p} pieces")
    for g in range(n - 1):
        if p_off[g + 1] < p_off[g]:
            raise ValueError(f"{where}: p_off goes back at gap {g}")


cdef check_index(const i64[::1] x, Py_ssize_t n, str where, str what):
    """Every ``x`` in ``[0, n)`` (memory safety)."""
    cdef Py_ssize_t i
    for i in range(x.shape[0]):
        if not 0 <= x[i] < n:
            raise ValueError(f"{where}: {what} {x[i]} outside [0, {n})")


cdef inline i64 length(const i64* p_len, Py_ssize_t p) noexcept nogil:
    """A piece's slots: ``p_len[p]``, or 1 when the pieces are slots (``p_len`` NULL)."""
    return 1 if p_len == NULL else p_len[p]


cdef const i64* lengths_of(const i64[::1] p_len, Py_ssize_t n_p, str where) except? NULL:
    """``p_len`` as a pointer, NULL when it is empty (every piece one slot)."""
    if p_len.shape[0] == 0:
        return NULL
    if p_len.shape[0] != n_p:
        raise ValueError(f"{where}: {p_len.shape[0]} lengths for {n_p} pieces")
    return &p_len[0]


# -- the pieces ------------------------------------------------------------------------------


def slot_pieces(const i64[::1] slot0, const i64[::1] n, i64 n_slots, i64[::1] p_off,
                i64[::1] p_start):
    """Pieces of one slot each: ``p_off[g]`` the first piece of gap ``g`` (``p_off`` has
    ``G + 1`` values), ``p_start`` the slots, ``min(slot0[g] + j, n_slots - 1)``."""
    cdef Py_ssize_t g, n_g = slot0.shape[0], p = 0
    cdef i64 j, s
    if p_off.shape[0] != n_g + 1 or n.shape[0] != n_g:
        raise ValueError("slot_pieces: p_off must hold G + 1 values, n G")
    with nogil:
        for g in range(n_g):
            p += n[g]
        if p != p_start.shape[0]:
            with gil:
                raise ValueError(f"slot_pieces: {p} slots for {p_start.shape[0]} places")
        p = 0
        for g in range(n_g):
            p_off[g] = p
            for j in range(n[g]):
                s = slot0[g] + j
                p_start[p] = s if s < n_slots else n_slots - 1
                p += 1
        p_off[n_g] = p


def piece_starts_by_mark(const i64[::1] p_start, const i64[::1] p_len, i64 n_slots,
                         i64[::1] inv):
    """The distinct first slots of the pieces (``0 <= p_start < n_slots``), as ``(u, u_len)``,
    and each piece's index among them in ``inv``: one mark per slot."""
    cdef Py_ssize_t n_p = p_start.shape[0], i
    cdef i64 s, n_u = 0
    cdef i64* rank = <i64*> malloc(max(n_slots, 1) * sizeof(i64))
    if rank == NULL:
        raise MemoryError()
    try:
        with nogil:
            for s in range(n_slots):
                rank[s] = -1
            for i in range(n_p):
                rank[p_start[i]] = 0
            for s in range(n_slots):
                if rank[s] == 0:
                    rank[s] = n_u
                    n_u += 1
                else:
                    rank[s] = -1
        import numpy as np
        u = np.empty(n_u, np.int64)
        u_len = np.empty(n_u, np.int64)
        fill_starts(rank, n_slots, p_start, p_len, inv, u, u_len)
        return u, u_len
    finally:
        free(rank)


cdef void fill_starts(const i64* rank, i64 n_slots, const i64[::1] p_start,
                      const i64[::1] p_len, i64[::1] inv, i64[::1] u, i64[::1] u_len
                      ) noexcept nogil:
    cdef Py_ssize_t i
    cdef i64 s
    for s in range(n_slots):
        if rank[s] >= 0:
            u[rank[s]] = s
    for i in range(p_start.shape[0]):
        inv[i] = rank[p_start[i]]
        u_len[inv[i]] = p_len[i]


def piece_runs(const i64[::1] p_off, const i64[::1] p_start, const i64[::1] p_len,
               const i64[::1] g_sym, const i64[::1] run_start, const i64[::1] run_bucket,
               i64[::1] p_run, i64[:, ::1] missing_sb):
    """The run of each piece (the last run that starts at or before it) in ``p_run``, and the
    missing slots per symbol and bucket added to ``missing_sb``."""
    cdef Py_ssize_t n_g = g_sym.shape[0], n_r = run_start.shape[0], g, p, r = 0
    if p_off.shape[0] != n_g + 1 or p_run.shape[0] != p_start.shape[0]:
        raise ValueError("piece_runs: shapes of p_off, p_run do not match")
    cdef const i64* pl = lengths_of(p_len, p_start.shape[0], "piece_runs")
    check_offsets(p_off, p_start.shape[0], "piece_runs")
    check_index(g_sym, missing_sb.shape[0], "piece_runs", "symbol")
    for r in range(n_r):
        if not 0 <= run_bucket[r] < missing_sb.shape[1]:
            raise ValueError(f"piece_runs: bucket {run_bucket[r]} outside the table")
    r = 0
    with nogil:
        for g in range(n_g):
            p = p_off[g]
            if p == p_off[g + 1]:
                continue
            while p < p_off[g + 1]:
                r = last_near(&run_start[0], 0, n_r, p_start[p], r)
                if r < 0:   # before the first run: never on a grid's own slots
                    with gil:
                        raise ValueError(f"piece_runs: slot {p_start[p]} before the grid")
                p_run[p] = r
                missing_sb[g_sym[g], run_bucket[r]] += length(pl, p)
                p += 1


def rate_times_slots(const f64[:, ::1] rate, const f64[:, ::1] e_kb, f64[:, ::1] out):
    """``out[s, k] = sum over b of rate[s, b] * e_kb[k, b]``, bucket after bucket from 0.0
    (no BLAS: the same bits on every machine); sessions with the row of an earlier one copy
    its sums."""
    cdef Py_ssize_t n_s = rate.shape[0], n_b = rate.shape[1], n_k = e_kb.shape[0]
    cdef Py_ssize_t s, k, j, b, n_rows = 0
    cdef f64 acc
    cdef bint same
    if e_kb.shape[1] != n_b or out.shape[0] != n_s or out.shape[1] != n_k:
        raise ValueError("rate_times_slots: shapes do not match")
    cdef Py_ssize_t* row_of = <Py_ssize_t*> malloc(max(n_k, 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t* first = <Py_ssize_t*> malloc(max(n_k, 1) * sizeof(Py_ssize_t))
    if row_of == NULL or first == NULL:
        free(row_of)
        free(first)
        raise MemoryError()
    with nogil:
        for k in range(n_k):
            row_of[k] = -1
            for j in range(n_rows):
                same = True
                for b in range(n_b):
                    if e_kb[k, b] != e_kb[first[j], b]:
                        same = False
                        break
                if same:
                    row_of[k] = first[j]
                    break
            if row_of[k] < 0:
                first[n_rows] = k
                n_rows += 1
        for s in range(n_s):
            for k in range(n_k):
                if row_of[k] >= 0:
                    out[s, k] = out[s, row_of[k]]
                    continue
                acc = 0.0
                for b in range(n_b):
                    acc = acc + rate[s, b] * e_kb[k, b]
                out[s, k] = acc
    free(row_of)
    free(first)


# -- the level of activity around each gap ---------------------------------------------------


def gap_levels(const i64[::1] g_sym, const i64[::1] g_ses, const i64[::1] g_slot0,
               const i64[::1] g_n, const i64[::1] p_off, const i64[::1] p_start,
               const i64[::1] p_len, const i64[::1] p_run, const i64[::1] run_start,
               const i64[::1] run_len, const i64[::1] run_bucket, const f64[:, ::1] rate,
               const f64[:, ::1] usual_sk, const f64[:, ::1] present_sk,
               const i64[::1] s_first, const i64[::1] s_last, i64 around, i64 min_around,
               f64[::1] activity, f64[::1] quiet, Py_ssize_t g_lo=0, Py_ssize_t g_hi=-1):
    """Per gap its activity (mean over its slots of the symbol's activity there, scaled by
    the session's level around the gap) into ``activity``; per piece ``max(1 - activity of
    the slot, 1e-12)`` into ``quiet`` (whose logarithm NumPy takes).

    Gaps ``[lo, hi)`` of ``g_sym`` (sorted by symbol, then slot) may be split among threads
    at a symbol's first gap; each call keeps its own running sums of the symbol's runs."""
    cdef Py_ssize_t n_g = g_sym.shape[0], n_r = run_start.shape[0]
    if g_hi < 0:
        g_hi = n_g
    if (p_off.shape[0] != n_g + 1 or quiet.shape[0] != p_start.shape[0]
            or activity.shape[0] != n_g):
        raise ValueError("gap_levels: shapes do not match")
    if not (0 <= g_lo <= g_hi <= n_g) or (0 < g_lo < n_g and g_sym[g_lo - 1] == g_sym[g_lo]):
        raise ValueError("gap_levels: [g_lo, g_hi) must start at a symbol's first gap")
    check_offsets(p_off, p_start.shape[0], "gap_levels")
    check_index(g_sym[g_lo:g_hi], min(rate.shape[0], usual_sk.shape[0], present_sk.shape[0]),
                "gap_levels", "symbol")
    check_index(g_ses[g_lo:g_hi], min(usual_sk.shape[1], present_sk.shape[1],
                                      s_first.shape[0], s_last.shape[0]),
                "gap_levels", "session")
    check_index(p_run[p_off[g_lo]:p_off[g_hi]], run_start.shape[0], "gap_levels", "run")
    check_index(run_bucket, rate.shape[1], "gap_levels", "bucket")
    cdef Py_ssize_t n_p = p_start.shape[0], p
    cdef const i64* pl = lengths_of(p_len, n_p, "gap_levels")
    cdef f64* cum = <f64*> malloc((n_r + 1) * sizeof(f64))
    cdef i64* p_cum = NULL
    if pl != NULL:   # slots: the count before piece i is i
        p_cum = <i64*> malloc((n_p + 1) * sizeof(i64))
    if cum == NULL or (pl != NULL and p_cum == NULL):
        free(cum)
        free(p_cum)
        raise MemoryError()
    with nogil:
        # The missing slots before each piece, counted over every piece as np.cumsum did.
        if p_cum != NULL:
            p_cum[0] = 0
            for p in range(n_p):
                p_cum[p + 1] = p_cum[p] + pl[p]
        levels_between(g_lo, g_hi, g_sym, g_ses, g_slot0, g_n, p_off, p_start, pl, p_run,
                       run_start, run_len, run_bucket, rate, usual_sk, present_sk, s_first,
                       s_last, around, min_around, activity, quiet, cum, p_cum)
    free(cum)
    free(p_cum)


cdef inline f64 upto(f64* cum, Py_ssize_t* filled, Py_ssize_t* hint, const f64* rate_s,
                     i64 x, const i64* run_start, const i64* run_len, const i64* run_bucket,
                     Py_ssize_t n_r) noexcept nogil:
    """The usual bars of a symbol (its row of ``rate``) in the slots before ``x``: the
    cumulative sum over its runs (``cum``, extended as far as needed, as np.cumsum adds)
    and the part of ``x``'s run."""
    cdef Py_ssize_t r = last_near(run_start, 0, n_r, x, hint[0])
    cdef Py_ssize_t j
    if r < 0:
        r = n_r - 1   # as a NumPy index -1 does
    hint[0] = r
    j = filled[0]
    while j < r:
        cum[j + 1] = cum[j] + rate_s[run_bucket[j]] * <f64> run_len[j]
        j += 1
    filled[0] = j
    return cum[r] + <f64> (x - run_start[r]) * rate_s[run_bucket[r]]


cdef inline i64 missing_before(const i64* p_start, const i64* p_len, const i64* p_cum,
                               Py_ssize_t lo, Py_ssize_t hi, i64 x, Py_ssize_t hint
                               ) noexcept nogil:
    """Missing slots before slot ``x``: the pieces ``[lo, hi)`` of one symbol, and all the
    pieces before ``lo`` (``p_cum[i]``: the slots of the pieces before piece ``i``; ``i``
    itself when the pieces are slots, ``p_cum`` and ``p_len`` NULL)."""
    cdef Py_ssize_t i = last_near(p_start, lo, hi, x, hint)
    cdef i64 part
    if i < lo:
        return lo if p_cum == NULL else p_cum[lo]
    part = x - p_start[i]
    if part > length(p_len, i):
        part = length(p_len, i)
    return (i if p_cum == NULL else p_cum[i]) + part


cdef void levels_between(Py_ssize_t g_lo, Py_ssize_t g_hi, const i64[::1] g_sym,
                         const i64[::1] g_ses, const i64[::1] g_slot0, const i64[::1] g_n,
                         const i64[::1] p_off, const i64[::1] p_start, const i64* pl,
                         const i64[::1] p_run, const i64[::1] run_start,
                         const i64[::1] run_len, const i64[::1] run_bucket,
                         const f64[:, ::1] rate, const f64[:, ::1] usual_sk,
                         const f64[:, ::1] present_sk, const i64[::1] s_first,
                         const i64[::1] s_last, i64 around, i64 min_around,
                         f64[::1] activity, f64[::1] quiet, f64* cum, const i64* p_cum
                         ) noexcept nogil:
    cdef Py_ssize_t g, p, g0, sym_lo = 0, sym_hi = 0, filled = 0, hint_lo = 0, hint_hi = 0
    cdef Py_ssize_t n_r = run_start.shape[0]
    cdef const f64* rate_s
    cdef i64 s, k, cur = -1, lo, hi, n_miss, others, run_cnt = 0
    cdef f64 usual_in_gap, outside, level, usual_near, near, x_rate, x_act, acc
    g = g_lo
    while g < g_hi:
        s = g_sym[g]
        # The symbol's gaps and pieces, and its running sums from its first run.
        g0 = g
        while g < g_hi and g_sym[g] == s:
            g += 1
        sym_lo, sym_hi = p_off[g0], p_off[g]
        cum[0] = 0.0
        filled = 0
        rate_s = &rate[s, 0]
        for g0 in range(g0, g):
            k = g_ses[g0]
            usual_in_gap = 0.0
            for p in range(p_off[g0], p_off[g0 + 1]):
                usual_in_gap = usual_in_gap + rate[s, run_bucket[p_run[p]]] * <f64> length(pl, p)
            outside = np_max(usual_sk[s, k] - usual_in_gap, 1e-9)
            level = np_clip(present_sk[s, k] / outside, 0.05, 1.0)
            if around:
                lo = s_first[k]
                if g_slot0[g0] - around > lo:
                    lo = g_slot0[g0] - around
                hi = s_last[k]
                if g_slot0[g0] + g_n[g0] + around < hi:
                    hi = g_slot0[g0] + g_n[g0] + around
                n_miss = (missing_before(&p_start[0], pl, p_cum, sym_lo, sym_hi, hi,
                                         p_off[g0 + 1] - 1)
                          - missing_before(&p_start[0], pl, p_cum, sym_lo, sym_hi, lo,
                                           p_off[g0]))
                others = hi - lo - g_n[g0]
                usual_near = (upto(cum, &filled, &hint_hi, rate_s, hi, &run_start[0],
                                   &run_len[0], &run_bucket[0], n_r)
                              - upto(cum, &filled, &hint_lo, rate_s, lo, &run_start[0],
                                     &run_len[0], &run_bucket[0], n_r)) - usual_in_gap
                near = np_clip(<f64> (hi - lo - n_miss) / np_max(usual_near, 1e-9),
                               0.05, 1.0)
                if others >= min_around:
                    level = near
            acc = 0.0
            for p in range(p_off[g0], p_off[g0 + 1]):
                x_act = rate[s, run_bucket[p_run[p]]] * level
                quiet[p] = np_max(1.0 - x_act, 1e-12)
                acc = acc + x_act * <f64> length(pl, p)
            activity[g0] = acc / <f64> g_n[g0]


# -- where the gaps are ----------------------------------------------------------------------


def locate_gaps(const i64[::1] g_sym, const i64[::1] g_ses, const i64[::1] g_start,
                const i64[::1] g_n, const i64[::1] window_open, const i64[::1] window_first,
                i64 step_ns, i64[::1] g_win, i64[::1] g_slot0, i64[:, ::1] missing_sk):
    """The window of each gap (the last that opens at or before its start) and its first
    slot's number; its slots added to ``missing_sk[symbol, session]``."""
    cdef Py_ssize_t n_g = g_start.shape[0], n_w = window_open.shape[0], g, w = -1
    if (g_win.shape[0] != n_g or g_slot0.shape[0] != n_g or window_first.shape[0] != n_w
            or g_sym.shape[0] != n_g or g_ses.shape[0] != n_g or g_n.shape[0] != n_g):
        raise ValueError("locate_gaps: shapes do not match")
    if step_ns <= 0:
        raise ValueError(f"locate_gaps: step_ns must be > 0, got {step_ns}")
    check_index(g_sym, missing_sk.shape[0], "locate_gaps", "symbol")
    check_index(g_ses, missing_sk.shape[1], "locate_gaps", "session")
    with nogil:
        for g in range(n_g):
            w = last_near(&window_open[0], 0, n_w, g_start[g], w)
            if w < 0:
                break
            g_win[g] = w
            g_slot0[g] = window_first[w] + (g_start[g] - window_open[w]) // step_ns
            missing_sk[g_sym[g], g_ses[g]] += g_n[g]
    if n_g and w < 0:
        raise ValueError(f"locate_gaps: a gap starts at {g_start[g]}, before every window")


# -- the cross-section and the kinds ---------------------------------------------------------


def cross_section(const i64[::1] g_sym, const i64[::1] p_off, const i64[::1] p_start,
                  const i64[::1] p_len, const i64[::1] p_run, const i64[::1] inv,
                  const i64[::1] u, const i64[::1] u_len, i64 n_slots,
                  const i64[::1] run_session, const i64[::1] run_bucket,
                  const uint8_t[:, ::1] active, const f64[:, ::1] n_active_kb,
                  f64 min_symbols, f64 outage_share):
    """Per distinct piece start, the share of the symbols that normally have bars there
    (``active[s, b]``; ``n_active_kb`` of them in session ``k``) that miss it, and whether it
    is an outage slot: ``(share_slot, outage_slot, outage_start, outage_end)``, the last two
    the outage pieces in slot order.

    The pieces are told apart by ``inv``, their index among the distinct starts ``u``
    (lengths ``u_len``), or, when ``inv`` is empty, by their first slot (``n_slots`` places,
    each ``0 <= p_start < n_slots``: for grids within the slot budget)."""
    import numpy as np
    cdef Py_ssize_t n_g = g_sym.shape[0], n_p = p_start.shape[0], n_u = u.shape[0]
    cdef Py_ssize_t g, p, i, n_o = 0
    cdef bint by_slot = inv.shape[0] == 0
    if (p_off.shape[0] != n_g + 1 or p_run.shape[0] != n_p
            or (not by_slot and inv.shape[0] != n_p) or u_len.shape[0] != n_u):
        raise ValueError("cross_section: shapes do not match")
    cdef const i64* pl = lengths_of(p_len, n_p, "cross_section")
    check_offsets(p_off, n_p, "cross_section")
    check_index(g_sym, active.shape[0], "cross_section", "symbol")
    check_index(p_run, min(run_session.shape[0], run_bucket.shape[0]), "cross_section", "run")
    check_index(run_bucket, min(active.shape[1], n_active_kb.shape[1]), "cross_section",
                "bucket")
    check_index(run_session, n_active_kb.shape[0], "cross_section", "session")
    if by_slot:
        n_u = n_slots
        for p in range(n_p):
            if not 0 <= p_start[p] < n_slots:
                raise ValueError(f"cross_section: a piece starts at slot {p_start[p]}, "
                                 f"outside [0, {n_slots})")
    else:
        for p in range(n_p):
            if not 0 <= inv[p] < n_u:
                raise ValueError(f"cross_section: inv {inv[p]} outside [0, {n_u})")
    share_slot_a = np.empty(n_u)
    outage_slot_a = np.zeros(n_u, np.uint8)
    cdef f64[::1] share_slot = share_slot_a
    cdef uint8_t[::1] outage_slot = outage_slot_a
    cdef f64* missing_active = <f64*> malloc(max(n_u, 1) * sizeof(f64))
    cdef i64* len_at = <i64*> malloc(max(n_u, 1) * sizeof(i64))
    if missing_active == NULL or len_at == NULL:
        free(missing_active)
        free(len_at)
        raise MemoryError()
    cdef i64 s, r
    cdef f64 n_act, x
    with nogil:
        for i in range(n_u):
            missing_active[i] = 0.0
            share_slot[i] = 0.0   # here: the symbols active there
            len_at[i] = 0 if by_slot else u_len[i]
        for g in range(n_g):
            s = g_sym[g]
            for p in range(p_off[g], p_off[g + 1]):
                r = p_run[p]
                i = p_start[p] if by_slot else inv[p]
                missing_active[i] += <f64> active[s, run_bucket[r]]
                share_slot[i] = n_active_kb[run_session[r], run_bucket[r]]
                if by_slot:
                    len_at[i] = length(pl, p)
        for i in range(n_u):
            if len_at[i] == 0:   # no piece starts at this slot
                share_slot[i] = NAN
                continue
            n_act = share_slot[i]
            if n_act >= min_symbols:
                share_slot[i] = missing_active[i] / (n_act if n_act >= 1.0 else 1.0)
            else:
                share_slot[i] = NAN
            x = share_slot[i] if share_slot[i] == share_slot[i] else 0.0
            outage_slot[i] = missing_active[i] >= min_symbols and x >= outage_share
            if outage_slot[i]:
                n_o += 1
    o_start_a = np.empty(n_o, np.int64)
    o_end_a = np.empty(n_o, np.int64)
    cdef i64[::1] o_start = o_start_a
    cdef i64[::1] o_end = o_end_a
    with nogil:
        n_o = 0
        for i in range(n_u):
            if outage_slot[i]:
                o_start[n_o] = i if by_slot else u[i]
                o_end[n_o] = o_start[n_o] + len_at[i]
                n_o += 1
    free(missing_active)
    free(len_at)
    return share_slot_a, outage_slot_a, o_start_a, o_end_a


def gap_kinds(const i64[::1] g_sym, const i64[::1] g_ses, const i64[::1] g_start,
              const i64[::1] g_end, const i64[::1] g_slot0, const i64[::1] g_n,
              const i64[::1] g_win, const i64[::1] p_off, const i64[::1] p_start,
              const i64[::1] p_len, const f64[::1] log_quiet, const i64[::1] inv,
              const f64[::1] share_slot, const uint8_t[::1] outage_slot,
              const i64[::1] outage_start, const i64[::1] outage_end,
              const i64[::1] window_first, const i64[::1] window_slots,
              const i64[::1] halted, const i64[:, ::1] since_ns, const i64[:, ::1] until_ns,
              const i64[::1] session_open_ns, const i64[::1] session_close_ns,
              f64 log_alpha, int no_trade, int outage, int late_start, int early_end,
              int halt, signed char[::1] kind, f64[::1] share, Py_ssize_t g_lo=0,
              Py_ssize_t g_hi=-1):
    """The kind of gaps ``[g_lo, g_hi)`` into ``kind`` and the share of the symbols that
    normally have bars there that miss their slots into ``share`` (see
    ``sessiondata.classify``).

    ``log_quiet`` per piece: the log of the probability that its slot is quiet; the
    cross-section per piece start as ``cross_section`` gives it (indexed by ``inv``, or by
    the first slot when ``inv`` is empty); ``halted`` per piece its slots in a halt (empty:
    none)."""
    cdef Py_ssize_t n_g = g_sym.shape[0], n_p = p_start.shape[0], n_u = share_slot.shape[0]
    cdef Py_ssize_t n_o = outage_start.shape[0], n_w = window_first.shape[0]
    cdef Py_ssize_t g, p, i
    cdef bint has_halts = halted.shape[0] > 0
    cdef bint by_slot = inv.shape[0] == 0
    if g_hi < 0:
        g_hi = n_g
    if (p_off.shape[0] != n_g + 1 or log_quiet.shape[0] != n_p
            or (not by_slot and inv.shape[0] != n_p) or outage_slot.shape[0] != n_u
            or outage_end.shape[0] != n_o or kind.shape[0] != n_g or share.shape[0] != n_g
            or window_slots.shape[0] != n_w or (has_halts and halted.shape[0] != n_p)
            or not 0 <= g_lo <= g_hi <= n_g):
        raise ValueError("gap_kinds: shapes do not match")
    check_offsets(p_off, n_p, "gap_kinds")
    cdef const i64* pl = lengths_of(p_len, n_p, "gap_kinds")
    check_index((inv if not by_slot else p_start)[p_off[g_lo]:p_off[g_hi]], n_u, "gap_kinds",
                "piece start")
    check_index(g_sym[g_lo:g_hi], since_ns.shape[0], "gap_kinds", "symbol")
    check_index(g_ses[g_lo:g_hi], min(since_ns.shape[1], session_open_ns.shape[0]),
                "gap_kinds", "session")
    check_index(g_win[g_lo:g_hi], n_w, "gap_kinds", "window")
    if until_ns.shape[0] != since_ns.shape[0] or until_ns.shape[1] != since_ns.shape[1] or \
            session_close_ns.shape[0] != session_open_ns.shape[0]:
        raise ValueError("gap_kinds: shapes of the sessions do not match")
    cdef i64 s, n, n_known, n_out, n_halt, before, after, first, last, w
    cdef f64 x, acc_q, acc_s
    cdef bint loud, at_start, at_end, alive
    cdef signed char k_
    cdef const i64* o_start = &outage_start[0] if n_o else NULL
    cdef const i64* o_end = &outage_end[0] if n_o else NULL
    with nogil:
        for g in range(g_lo, g_hi):
            acc_q = 0.0
            acc_s = 0.0
            n_known = n_out = n_halt = 0
            for p in range(p_off[g], p_off[g + 1]):
                n = length(pl, p)
                acc_q = acc_q + log_quiet[p] * <f64> n
                i = p_start[p] if by_slot else inv[p]
                x = share_slot[i]
                if x == x:
                    n_known += n
                    acc_s = acc_s + x * <f64> n
                else:
                    acc_s = acc_s + 0.0 * <f64> n
                if outage_slot[i]:
                    n_out += n
                if has_halts:
                    n_halt += halted[p]
            share[g] = acc_s / <f64> n_known if n_known > 0 else NAN
            # A symbol with a bar in an outage slot next to its gap was trading through it.
            before = g_slot0[g] - 1
            after = g_slot0[g] + g_n[g]
            w = g_win[g]
            alive = ((before >= window_first[w] and in_outage(o_start, o_end, n_o, before))
                     or (after < window_first[w] + window_slots[w]
                         and in_outage(o_start, o_end, n_o, after)))
            s = g_sym[g]
            first = session_open_ns[g_ses[g]]
            if since_ns[s, g_ses[g]] > first:
                first = since_ns[s, g_ses[g]]
            last = session_close_ns[g_ses[g]]
            if until_ns[s, g_ses[g]] < last:
                last = until_ns[s, g_ses[g]]
            at_start = g_start[g] <= first
            at_end = g_end[g] >= last
            loud = acc_q < log_alpha
            k_ = no_trade
            if loud:
                k_ = outage
                if at_end and not at_start:
                    k_ = early_end
                if at_start and not at_end:
                    k_ = late_start
            if <f64> n_out / <f64> g_n[g] >= 0.5 and not alive:
                k_ = outage
            if <f64> n_halt / <f64> g_n[g] >= 0.5:
                k_ = halt
            kind[g] = k_


cdef inline bint in_outage(const i64* o_start, const i64* o_end, Py_ssize_t n_o,
                           i64 x) noexcept nogil:
    """Whether slot ``x`` lies in an outage piece (sorted, not overlapping)."""
    cdef Py_ssize_t i
    if n_o == 0:
        return False
    i = last_at_or_before(o_start, 0, n_o, x)
    return i >= 0 and x < o_end[i]
