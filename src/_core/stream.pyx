# The per-symbol pipeline of a session, in compiled code: base bars in, validated and stored
# columnar, rolled up into every derived interval as they arrive, with live gap counters.
#
# One SymbolStream per symbol and session.  It is not thread-safe by itself: the Python layer
# serialises calls on one stream (see SymbolSessionData).  ``busy`` is set while a batch runs
# without the GIL, so that the Python layer knows when it must wait.

from cpython.number cimport PyIndex_Check
from libc.stdint cimport INT64_MAX, INT64_MIN, uint8_t
from libc.stdlib cimport calloc, free

import numpy as np

from common cimport (
    FAULT_DUPLICATE, FAULT_MISALIGNED, FAULT_NONE, FAULT_OUTSIDE, FAULT_OVERFLOW,
    FAULT_LATE, FAULT_UNSORTED, N_FAULTS, Bucket, ColumnStore, GapWalker, GridCursor, Rollup, f64, grid_locate,
    bucket_expected, i64, price_fault, slots_in_window, rollup_emit, rollup_feed, rollup_init,
    rollup_run, store_append, as_i64, check_grid, store_free, store_init, add_sat, step_end,
    store_nbytes, store_push, store_reserve, store_snapshot, walker_finish, walker_start, walker_step_to,
)

cdef enum:
    MAX_DERIVED = 32

cdef i64 NO_BAR = INT64_MIN


cdef Py_ssize_t _slots(const i64* g_open, const i64* g_close, Py_ssize_t n, i64 step_ns):
    """The slots of a grid: the most rows a store on it can ever need."""
    cdef Py_ssize_t w, total = 0
    cdef i64 k
    for w in range(n):
        k = slots_in_window(g_open[w], g_close[w], step_ns)
        if k > INT64_MAX - total:
            return INT64_MAX        # no real bound: the store grows as bars come
        total += k
    return total


cdef class SymbolStream:
    """Base bars of one symbol in one session, and every derived interval made from them.

    Parameters
    ----------
    w_open, w_close : int64 arrays
        The session's windows, [open, close) in ns UTC, sorted.
    base_ns : int
        The base interval.
    """
    cdef ColumnStore base
    cdef ColumnStore* derived
    cdef Rollup* rollups
    cdef Py_ssize_t* parent      # the interval each derived one is fed from (-1: the base)
    cdef Py_ssize_t n_derived
    cdef Py_ssize_t n_cascaded     # derived intervals fed from a finer derived one
    cdef readonly i64 last_closed  # derived bars the last accepted bar closed
    cdef const i64* w_open
    cdef const i64* w_close
    cdef Py_ssize_t n_windows
    cdef GridCursor cursor
    cdef GapWalker gaps
    cdef i64 rejected[N_FAULTS]
    cdef list _keep              # keeps every grid array alive: the C side points into them
    cdef readonly i64 base_ns
    cdef readonly i64 last_ns
    cdef readonly bint busy
    cdef public bint volume_optional   # bars without volume: NaN volume is no fault

    def __cinit__(self):
        store_init(&self.base, False)
        self.derived = <ColumnStore*> calloc(MAX_DERIVED, sizeof(ColumnStore))
        self.rollups = <Rollup*> calloc(MAX_DERIVED, sizeof(Rollup))
        self.parent = <Py_ssize_t*> calloc(MAX_DERIVED, sizeof(Py_ssize_t))
        if self.derived == NULL or self.rollups == NULL or self.parent == NULL:
            raise MemoryError()
        self.n_derived = 0

    def __init__(self, w_open, w_close, i64 base_ns):
        self.reset(w_open, w_close, base_ns)

    def reset(self, w_open, w_close, i64 base_ns):
        """Start over on new windows, with no bar and no derived interval, keeping the memory
        already allocated (a new session reuses the last one's buffers: no page faults)."""
        cdef const i64[::1] wo = np.ascontiguousarray(w_open, dtype=np.int64)
        cdef const i64[::1] wc = np.ascontiguousarray(w_close, dtype=np.int64)
        if wo.shape[0] == 0 or wo.shape[0] != wc.shape[0]:
            raise ValueError("a stream needs one or more session windows")
        check_grid(wo, wc, "SymbolStream")
        if base_ns <= 0:
            raise ValueError(f"base_ns must be positive, got {base_ns}")
        if self.busy:
            raise RuntimeError("stream is busy with a batch")
        self._keep = [wo, wc]
        self.w_open = &wo[0]
        self.w_close = &wc[0]
        self.n_windows = wo.shape[0]
        self.base_ns = base_ns
        self.base.n = 0
        self.base.max_rows = _slots(&wo[0], &wc[0], wo.shape[0], base_ns)
        self.n_derived = 0
        self.n_cascaded = 0
        self.last_ns = NO_BAR
        self.last_closed = 0
        self.cursor.window = 0
        self.cursor.slot_start = NO_BAR
        self.cursor.slot_end = NO_BAR
        walker_start(&self.gaps, self.w_open, self.n_windows)
        for i in range(N_FAULTS):
            self.rejected[i] = 0

    def __dealloc__(self):
        cdef Py_ssize_t k
        store_free(&self.base)
        if self.derived != NULL:
            for k in range(MAX_DERIVED):  # calloc'd: stores never used hold NULLs
                store_free(&self.derived[k])
            free(self.derived)
        free(self.rollups)
        free(self.parent)

    def add_derived(self, g_open, g_close, g_base_slots, i64 step_ns, g_last_open=None):
        """Add a derived interval on the given grid, and fill it from the bars already held.

        It is fed from the coarsest interval already present whose buckets nest in its own
        (5m feeds 15m, 15m feeds 1h, any intraday one feeds the session), else from the base
        bars: each base bar then touches one bucket, and coarser ones only see closed bars.
        Returns its index.
        """
        cdef const i64[::1] go = np.ascontiguousarray(g_open, dtype=np.int64)
        cdef const i64[::1] gc = np.ascontiguousarray(g_close, dtype=np.int64)
        cdef const i64[::1] gb = np.ascontiguousarray(g_base_slots, dtype=np.int64)
        cdef const i64[::1] gl = go if g_last_open is None else np.ascontiguousarray(
            g_last_open, dtype=np.int64)
        cdef Py_ssize_t k = self.n_derived, i, j, p = -1
        cdef i64 best = 0, s
        cdef Rollup* r
        cdef ColumnStore* src
        cdef int rc = 0
        if k >= MAX_DERIVED:
            raise ValueError(f"at most {MAX_DERIVED} derived intervals per symbol")
        if (go.shape[0] == 0 or go.shape[0] != gc.shape[0] or go.shape[0] != gb.shape[0]
                or go.shape[0] != gl.shape[0]):
            raise ValueError("a derived grid needs one or more windows, with matching arrays")
        check_grid(go, gc, "add_derived")
        if step_ns < 0 or (step_ns > 0 and step_ns % self.base_ns != 0):
            raise ValueError(f"step {step_ns} ns is not a whole multiple of the base")
        for j in range(k):
            s = self.rollups[j].step_ns
            if s > best and (step_ns == 0 or (step_ns > s and step_ns % s == 0)):
                best = s
                p = j
        self._keep.append((go, gc, gb, gl))
        if self.derived[k].ts == NULL:
            store_init(&self.derived[k], True)
        self.derived[k].n = 0       # a reset stream keeps its buffers
        self.derived[k].max_rows = _slots(&go[0], &gc[0], go.shape[0], step_ns)
        r = &self.rollups[k]
        rollup_init(r, &go[0], &gc[0], &gb[0], &gl[0], go.shape[0], step_ns, self.base_ns)
        self.parent[k] = p
        self.n_derived = k + 1
        if p >= 0:
            self.n_cascaded += 1
        if p >= 0:
            r.feed_step = best
            src = &self.derived[p]
            for i in range(src.n):
                rc = rollup_feed(r, src.ts[i], src.open[i], src.high[i], src.low[i],
                                 src.close[i], src.volume[i], src.count[i], &self.derived[k])
                if rc < 0:
                    break
        else:
            src = &self.base
            for i in range(src.n):
                rc = rollup_feed(r, src.ts[i], src.open[i], src.high[i], src.low[i],
                                 src.close[i], src.volume[i], 1, &self.derived[k])
                if rc < 0:
                    break
        if rc < 0:
            raise MemoryError("no memory left for derived bars")
        if p >= 0 and self.last_ns != NO_BAR:
            # As if fed bar by bar: a bucket that ended before the last bar is complete.
            if self._close_ended(self.last_ns, False, True) < 0:
                raise MemoryError("no memory left for derived bars")
        return k

    cdef int _cascade(self, Py_ssize_t k, int closed) noexcept nogil:
        """Feed the bars derived interval k just closed (its last ``closed`` rows) to the
        intervals fed from it.  Returns the bars closed in all, or -1 when memory ran out."""
        cdef Py_ssize_t j, i
        cdef ColumnStore* src = &self.derived[k]
        cdef int total = 0, rc
        i = src.n - closed
        for j in range(k + 1, self.n_derived):
            if self.parent[j] != k:
                continue
            rc = rollup_run(&self.rollups[j], src.ts + i, src.open + i, src.high + i,
                            src.low + i, src.close + i, src.volume + i, src.count + i,
                            closed, &self.derived[j])
            if rc < 0:
                return -1
            if rc > 0:
                total += rc
                rc = self._cascade(j, rc)
                if rc < 0:
                    return -1
                total += rc
        return total

    cdef inline int _accept(self, i64 t, f64 o, f64 h, f64 l, f64 c, f64 v) noexcept nogil:
        """Validate, store and roll up one bar; its fault code (FAULT_NONE when accepted)."""
        cdef uint8_t f = price_fault(o, h, l, c, v, self.volume_optional)
        cdef GridCursor probe
        cdef Py_ssize_t k
        cdef int rc
        cdef i64 closed = 0
        if f != FAULT_NONE:
            return f
        if t <= self.last_ns and not (t == NO_BAR and self.base.n == 0):
            # (NO_BAR is also the int64 minimum: a first bar may lie there.)
            return FAULT_DUPLICATE if t == self.last_ns else FAULT_UNSORTED
        probe = self.cursor
        if t == probe.slot_end and t < self.w_close[probe.window]:
            # The next slot of the same window (the common case): no division needed.
            probe.slot_start = t
            probe.slot_end = step_end(t, self.base_ns, self.w_close[probe.window])
        else:
            if not grid_locate(&probe, self.w_open, self.w_close, self.n_windows,
                               self.base_ns, t):
                return FAULT_OUTSIDE
            if t != probe.slot_start:
                return FAULT_MISALIGNED
        for k in range(self.n_derived):
            # A bucket closed early (advance, flush) must not get a second bar.
            if t < self.rollups[k].closed_until and not self.rollups[k].bucket.active:
                return FAULT_LATE
        if store_push(&self.base, t, o, h, l, c, v, 1, 1.0) != 0:
            return FAULT_OVERFLOW
        self.cursor = probe
        walker_step_to(&self.gaps, self.w_open, self.w_close, self.n_windows, self.base_ns, t,
                       NULL, NULL, 0, 0, &rc)
        for k in range(self.n_derived):
            if self.parent[k] >= 0:
                continue
            rc = rollup_feed(&self.rollups[k], t, o, h, l, c, v, 1, &self.derived[k])
            if rc > 0:
                closed += rc
                rc = self._cascade(k, rc)
            if rc < 0:
                return FAULT_OVERFLOW
            closed += rc
        if self.n_cascaded:
            # A coarser bucket fed from a finer interval waits for closed finer bars; one
            # that ended before this bar is complete now, as it would be if fed directly.
            rc = self._close_ended(t, False, True)
            if rc < 0:
                return FAULT_OVERFLOW
            closed += rc
        self.last_ns = t
        self.last_closed = closed
        return FAULT_NONE

    cpdef int push(self, i64 ts, f64 open, f64 high, f64 low, f64 close, f64 volume) except -1:
        """Offer one base bar.  Returns 0 when it was accepted, else its fault code (the bar
        is then counted as rejected and nothing else changes)."""
        cdef int f
        if self.busy:
            raise RuntimeError("stream is busy with a batch; serialise calls on one stream")
        f = self._accept(ts, open, high, low, close, volume)
        if f == FAULT_OVERFLOW:
            raise MemoryError("no memory left for bars")
        if f != FAULT_NONE:
            self.rejected[f] += 1
        return f

    def push_many(self, ts, open, high, low, close, volume, bint stop_at_first=True):
        """Offer arrays of base bars in one call, without the GIL.

        With ``stop_at_first`` the batch stops at the first faulty row, which is not counted
        as rejected (the caller raises); bars before it are kept.  Otherwise faulty rows are
        dropped and counted.  Returns ``(accepted, first_bad_row, fault)``, with -1 and 0 when
        every row was accepted.
        """
        cdef const i64[::1] t = as_i64(ts, "ts")
        cdef const f64[::1] o = np.ascontiguousarray(open, dtype=np.float64)
        cdef const f64[::1] h = np.ascontiguousarray(high, dtype=np.float64)
        cdef const f64[::1] lo = np.ascontiguousarray(low, dtype=np.float64)
        cdef const f64[::1] c = np.ascontiguousarray(close, dtype=np.float64)
        cdef const f64[::1] v = np.ascontiguousarray(volume, dtype=np.float64)
        cdef Py_ssize_t i, j, n = t.shape[0], k, first = -1
        cdef i64 accepted = 0
        cdef int f = FAULT_NONE, first_fault = FAULT_NONE
        if not (o.shape[0] == h.shape[0] == lo.shape[0] == c.shape[0] == v.shape[0] == n):
            raise ValueError("columns differ in length")
        if self.busy:
            raise RuntimeError("stream is busy with a batch; serialise calls on one stream")
        if n == 0:
            return 0, -1, FAULT_NONE
        if store_reserve(&self.base, self.base.n + n) != 0:
            raise MemoryError("no memory left for bars")
        self.busy = True
        try:
            with nogil:
                i = 0
                while i < n:
                    # The longest run of sound rows from i, then each pass over the run in a
                    # tight loop of its own: copy, gap walk, roll-ups, cascades.
                    j = self._sound_run(&t[0], &o[0], &h[0], &lo[0], &c[0], &v[0], i, n, &f)
                    if j > i and self._take_run(&t[i], &o[i], &h[i], &lo[i], &c[i], &v[i],
                                                j - i) != 0:
                        f = FAULT_OVERFLOW
                        first = j
                        first_fault = f
                        break
                    accepted += j - i
                    if j >= n:
                        break
                    if first < 0:
                        first = j
                        first_fault = f
                    if stop_at_first:
                        break
                    self.rejected[f] += 1
                    i = j + 1
        finally:
            self.busy = False
        if first_fault == FAULT_OVERFLOW:
            raise MemoryError("no memory left for bars")
        return accepted, first, first_fault

    cdef Py_ssize_t _sound_run(self, const i64* t, const f64* o, const f64* h, const f64* lo,
                               const f64* c, const f64* v, Py_ssize_t i, Py_ssize_t n,
                               int* fault) noexcept nogil:
        """The end of the run of rows from i that _accept would take, and the fault of the
        row that ends it (FAULT_NONE at n).  Moves the base cursor over the run."""
        cdef i64 last = self.last_ns, late = NO_BAR, tt
        cdef Py_ssize_t first = i
        cdef GridCursor probe = self.cursor
        cdef i64 wclose = self.w_close[probe.window] if probe.window < self.n_windows else 0
        cdef Py_ssize_t k
        cdef uint8_t f = FAULT_NONE
        for k in range(self.n_derived):
            if not self.rollups[k].bucket.active and self.rollups[k].closed_until > late:
                late = self.rollups[k].closed_until
        while i < n:
            tt = t[i]
            f = price_fault(o[i], h[i], lo[i], c[i], v[i], self.volume_optional)
            if f != FAULT_NONE:
                break
            if tt <= last and not (tt == NO_BAR and i == first and self.base.n == 0):
                f = FAULT_DUPLICATE if tt == last else FAULT_UNSORTED
                break
            if tt == probe.slot_end and tt < wclose:
                probe.slot_start = tt
                probe.slot_end = step_end(tt, self.base_ns, wclose)
            else:
                if not grid_locate(&probe, self.w_open, self.w_close, self.n_windows,
                                   self.base_ns, tt):
                    f = FAULT_OUTSIDE
                    probe = self.cursor
                    break
                if tt != probe.slot_start:
                    f = FAULT_MISALIGNED
                    probe = self.cursor
                    break
                wclose = self.w_close[probe.window]
            if tt < late:    # checked after the slot, in the order _accept checks
                f = FAULT_LATE
                probe = self.cursor
                break
            self.cursor = probe
            last = tt
            i += 1
        fault[0] = f
        return i

    cdef int _take_run(self, const i64* t, const f64* o, const f64* h, const f64* lo,
                       const f64* c, const f64* v, Py_ssize_t m) noexcept nogil:
        """Store a run of m sound bars and roll them into every derived interval; what
        m calls of _accept would do.  0, or -1 when memory ran out."""
        cdef Py_ssize_t k, i
        cdef int rc = FAULT_NONE, closed
        cdef i64 nxt, wclose, lim
        cdef GapWalker* g = &self.gaps
        if store_append(&self.base, t, o, h, lo, c, v, m) != 0:
            return -1
        # The gap walk, with consecutive slots of one window in a tight loop.
        i = 0
        while i < m:
            nxt = g.next_slot
            wclose = self.w_close[g.window] if g.window < self.n_windows else 0
            if t[i] == nxt and nxt < wclose:
                # Below lim, nxt + base_ns stays inside int64; the one slot above it (only at
                # the very top of the range) is taken after the tight loop.
                lim = wclose if wclose <= INT64_MAX - self.base_ns else INT64_MAX - self.base_ns + 1
                while i < m and t[i] == nxt and nxt < lim:
                    nxt += self.base_ns
                    g.present += 1
                    i += 1
                if i < m and t[i] == nxt and nxt < wclose:
                    g.present += 1
                    i += 1
                    nxt = wclose
                g.next_slot = nxt
                continue
            walker_step_to(g, self.w_open, self.w_close, self.n_windows, self.base_ns, t[i],
                           NULL, NULL, 0, 0, &rc)
            i += 1
        self.last_closed = 0
        for k in range(self.n_derived):
            if self.parent[k] >= 0:
                continue
            closed = rollup_run(&self.rollups[k], t, o, h, lo, c, v, NULL, m,
                                &self.derived[k])
            if closed < 0:
                return -1
            if closed > 0:
                self.last_closed += closed
                closed = self._cascade(k, closed)
                if closed < 0:
                    return -1
                self.last_closed += closed
        if self.n_cascaded:
            closed = self._close_ended(t[m - 1], False, True)
            if closed < 0:
                return -1
            self.last_closed += closed
        self.last_ns = t[m - 1]
        return 0

    def count_rejected(self, int fault, i64 n=1):
        """Count n bars rejected for ``fault`` by the Python layer (e.g. a drop policy)."""
        if not 0 < fault < N_FAULTS:
            raise ValueError(f"unknown fault code {fault}")
        self.rejected[fault] += n

    def advance(self, i64 now_ns):
        """Close every derived bar whose bucket ended by now_ns; returns how many closed.

        A bar that arrives later for a bucket closed this way is rejected as late.
        """
        return self._close(now_ns, False)

    def flush(self):
        """Close every derived bar being built (the end of the session); returns how many."""
        return self._close(0, True)

    cdef int _close(self, i64 now_ns, bint everything) except -1:
        cdef int closed = self._close_ended(now_ns, everything, False)
        if closed < 0:
            raise MemoryError("no memory left for derived bars")
        return closed

    cdef int _close_ended(self, i64 now_ns, bint everything, bint fed_only) noexcept nogil:
        """Close the derived bars whose bucket ended by now_ns (all with ``everything``;
        only the intervals fed from a finer derived one with ``fed_only``).  Returns how many
        closed, or -1 when memory ran out."""
        cdef Py_ssize_t k
        cdef int closed = 0, rc
        # Finer intervals first: what they close feeds the coarser ones before those close.
        for k in range(self.n_derived):
            if fed_only and self.parent[k] < 0:
                continue
            if self.rollups[k].bucket.active and (everything
                                                  or self.rollups[k].bucket.end <= now_ns):
                if rollup_emit(&self.rollups[k], &self.derived[k]) != 0:
                    return -1
                closed += 1
                rc = self._cascade(k, 1)
                if rc < 0:
                    return -1
                closed += rc
        return closed

    @property
    def n_derived(self):
        return self.n_derived

    def __len__(self):
        return self.base.n

    def count(self, Py_ssize_t k=-1):
        """Bars held for the base interval (k = -1) or derived interval k."""
        return self._store(k).n

    cdef ColumnStore* _store(self, Py_ssize_t k) except NULL:
        if k == -1:
            return &self.base
        if not 0 <= k < self.n_derived:
            raise IndexError(f"no derived interval {k}")
        return &self.derived[k]

    def bars(self, Py_ssize_t k=-1):
        """A snapshot (new arrays) of the bars held for the base (k = -1) or derived k."""
        return store_snapshot(self._store(k), np)

    def partial_bar(self, Py_ssize_t k):
        """The derived bar being built for interval k (what it holds so far, the bars still
        in its finer feeding intervals included), as a dict with its ``end``, or None."""
        cdef Rollup* r
        cdef GridCursor probe
        cdef Py_ssize_t p
        cdef Bucket b
        if not 0 <= k < self.n_derived:
            raise IndexError(f"no derived interval {k}")
        r = &self.rollups[k]
        p = self.parent[k]
        own = None
        if r.bucket.active:
            b = r.bucket
            own = {"ts": b.start, "end": b.end, "expected": b.expected, "open": b.open,
                   "high": b.high, "low": b.low, "close": b.close, "volume": b.volume,
                   "count": b.count}
        sub = self.partial_bar(p) if p >= 0 else None
        if sub is not None:
            probe = r.cursor
            if not grid_locate(&probe, r.g_open, r.g_close, r.n_windows, r.step_ns, sub["ts"]):
                raise RuntimeError("a finer partial bar lies outside the coarser grid")
            if own is not None and own["ts"] == probe.slot_start:
                own["high"] = max(own["high"], sub["high"])
                own["low"] = min(own["low"], sub["low"])
                own["close"] = sub["close"]
                own["volume"] += sub["volume"]
                own["count"] += sub["count"]
            else:
                r.cursor, saved = probe, r.cursor
                expected = bucket_expected(r)
                r.cursor = saved
                own = {"ts": probe.slot_start, "end": probe.slot_end, "expected": expected,
                       "open": sub["open"], "high": sub["high"], "low": sub["low"],
                       "close": sub["close"], "volume": sub["volume"], "count": sub["count"]}
        if own is not None:
            own["coverage"] = own["count"] / own["expected"]
        return own

    def gap_counters(self, Py_ssize_t k=-1):
        """Live ``(present, missing, runs)`` for slots up to the last bar stored (base) or the
        last derived bar closed (derived k)."""
        cdef GapWalker* s
        if k == -1:
            s = &self.gaps
        elif 0 <= k < self.n_derived:
            s = &self.rollups[k].gaps
        else:
            raise IndexError(f"no derived interval {k}")
        return s.present, s.missing, s.runs

    @property
    def rejected(self):
        """Rejected bars per fault code (index = code)."""
        return [self.rejected[i] for i in range(N_FAULTS)]

    @property
    def nbytes(self):
        """Bytes allocated for bars (base and derived)."""
        cdef Py_ssize_t k, total = store_nbytes(&self.base)
        for k in range(self.n_derived):
            total += store_nbytes(&self.derived[k])
        return total

    @property
    def held_nbytes(self):
        """Bytes of the bars held (what the allocation holds in use)."""
        cdef Py_ssize_t k, total = self.base.n * 48
        for k in range(self.n_derived):
            total += self.derived[k].n * 64
        return total


cdef class SessionCore:
    """The compiled base of ``SessionData``: the registry dict and the per-bar fast path.

    ``add_bar`` looks the symbol up and pushes the bar into its stream without releasing the
    GIL and without running any Python code in between, so under the GIL it is atomic with
    respect to every other registry operation (all of which hold the GIL too).  A stream busy
    with a batch (which runs without the GIL, under the registry lock) sends the bar to
    ``_add_bar_waiting``, which the Python class implements by taking that lock.
    """
    cdef public dict _symbols        # symbol -> SymbolSessionData (with a ``_stream``)
    cdef public dict _unknown_bars   # symbol -> bars offered for a symbol not registered
    cdef public i64 _clock           # latest bar end seen, or a later time set by advance
    cdef public bint _raise_on_bad

    def __cinit__(self):
        self._symbols = {}
        self._unknown_bars = {}
        self._clock = NO_BAR
        self._raise_on_bad = True

    def add_bar(self, symbol, object ts, object open, object high, object low, object close,
                object volume):
        """Offer one base bar of ``symbol``.

        Returns 0 when it was stored, -1 when the symbol is not registered (counted in
        ``unknown_bars``), or, under the ``drop`` policy, the fault code of a dropped bar.
        Under the ``raise`` policy a bad bar raises ``BadBarError``.  A value that is no
        int64 timestamp or no real number raises TypeError/ValueError naming the field and
        the symbol.
        """
        cdef object entry
        cdef SymbolStream stream
        cdef int f
        cdef i64 t
        cdef f64 o, h, l, c, v
        if type(symbol) is not str and not isinstance(symbol, str):
            raise TypeError(f"symbol must be a string, got {type(symbol).__name__}")
        if type(ts) is int or PyIndex_Check(ts):   # ints and NumPy integers, never floats
            try:
                t = ts
                o = open
                h = high
                l = low
                c = close
                v = volume
            except (TypeError, ValueError, OverflowError):
                # Off the fast path: say which field of which symbol could not be converted.
                bad_value(symbol, ts, open, high, low, close, volume)
                raise
        else:
            raise TypeError(f"{symbol}: ts must be an integer of nanoseconds, got "
                            f"{type(ts).__name__} {ts!r}")
        entry = self._symbols.get(symbol)
        if entry is None:
            self._unknown_bars[symbol] = self._unknown_bars.get(symbol, 0) + 1
            return -1
        stream = <SymbolStream?> entry._stream
        if stream.busy:
            return self._add_bar_waiting(symbol, t, o, h, l, c, v)
        f = stream._accept(t, o, h, l, c, v)
        if f == FAULT_NONE:
            t = add_sat(t, stream.base_ns)     # the bar's end (saturated at the int64 max)
            if t > self._clock:
                self._clock = t
            return 0
        if f == FAULT_OVERFLOW:
            raise MemoryError("no memory left for bars")
        if self._raise_on_bad:
            # Raised, not dropped: the caller hears of it, the quality report does not.
            self._bad_bar(symbol, f, t, o, h, l, c, v)
        stream.rejected[f] += 1
        return f

    def _note_clock(self, i64 end_ns):
        if end_ns > self._clock:
            self._clock = end_ns


def bad_value(symbol, ts, open, high, low, close, volume):
    """Raise the error that says which field of a streamed bar is no int64 timestamp or no
    real number (the per-bar path converts first and asks here only when that failed)."""
    cdef i64 t
    cdef f64 x
    try:
        t = ts
    except OverflowError:
        raise ValueError(f"{symbol}: ts {ts!r} is outside the int64 nanosecond range "
                         f"[{INT64_MIN}, {INT64_MAX}] (about 1677-09-21 to 2262-04-11)") from None
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{symbol}: ts must be an integer of nanoseconds, got "
                        f"{type(ts).__name__} {ts!r} ({exc})") from None
    for name, value in (("open", open), ("high", high), ("low", low), ("close", close),
                        ("volume", volume)):
        try:
            x = value
        except OverflowError:
            raise ValueError(f"{symbol}: {name} {value!r} is too large for a float64") from None
        except (TypeError, ValueError):
            raise TypeError(f"{symbol}: {name} must be a real number, got "
                            f"{type(value).__name__} {value!r}") from None
