# The per-symbol pipeline of a session, in compiled code: base bars in, validated and stored
# columnar, rolled up into every derived interval as they arrive, with live gap counters.
#
# One SymbolStream per symbol and session.  It is not thread-safe by itself: the Python layer
# serialises calls on one stream (see SymbolSessionData).  ``busy`` is set while a batch runs
# without the GIL, so that the Python layer knows when it must wait.

cimport cython
from cpython.dict cimport PyDict_Next
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.pyport cimport PY_SSIZE_T_MAX
from cpython.number cimport PyIndex_Check
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from libc.stdint cimport INT64_MAX, INT64_MIN, uint8_t
from libc.stdlib cimport calloc, free
from cpython.float cimport PyFloat_AS_DOUBLE
from libc.string cimport memcpy, memmove, memset

import os
import sys

import numpy as np

from common cimport (
    FAULT_DUPLICATE, FAULT_MISALIGNED, FAULT_NONE, FAULT_OUTSIDE, FAULT_OVERFLOW,
    FAULT_LATE, FAULT_UNSORTED, N_FAULTS, BarRow, Bucket, BarStore, GapWalker, GridCursor, Rollup, f64, grid_locate,
    bucket_add, bucket_expected, i64, price_fault, slots_in_window, rollup_emit, rollup_feed, rollup_init,
    rollup_run, store_append, as_i64, check_grid, store_free, store_init, add_sat, step_end,
    store_nbytes, store_push, store_reserve, store_resize, store_set, store_snapshot, walker_finish, walker_start,
    walker_step_to,
    bucket_slots, store_row, grid_next, run_end, slots_from, span, sub_sat, u64,
)

cdef extern from "Python.h":
    int _list_clear "PyList_SetSlice" (object items, Py_ssize_t low, Py_ssize_t high,
                                       PyObject* new) except -1

cdef extern from "Python.h":
    void Py_SET_SIZE(object o, Py_ssize_t size)
    Py_ssize_t _refcnt "Py_REFCNT" (PyObject* o)
    # The callback called straight through the vectorcall protocol (one positional argument,
    # the slot before it free for a bound method's self): no generic call's type tests.
    object _vectorcall "PyObject_Vectorcall" (object callable, PyObject** args, size_t nargsf,
                                              PyObject* kwnames)
    size_t PY_VECTORCALL_ARGUMENTS_OFFSET
    void* _type_of "Py_TYPE" (PyObject* o)


cdef extern from *:
    """
    /* A callback called with one positional argument (args[0], the slot before it free)
       through its own vectorcall slot when it has one (a Python function, a bound method,
       most builtins): PyObject_Vectorcall's own entry and its check of the result are left
       out (~35 instructions a call).  The part of that check that matters is kept: a
       callable that returned NULL without an exception gets the SystemError it would have
       had. */
    static inline PyObject* sd_call1(PyObject* fn, PyObject* const* args) {
        vectorcallfunc f = PyVectorcall_Function(fn);
        PyObject* res;
        if (f == NULL)
            return PyObject_Vectorcall(fn, args, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        res = f(fn, args, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (res == NULL && !PyErr_Occurred())
            PyErr_Format(PyExc_SystemError, "%R returned NULL without setting an exception",
                         fn);
        return res;
    }
    """
    PyObject* sd_call1(PyObject* fn, PyObject** args)

cdef enum:
    MAX_DERIVED = 32

cdef i64 NO_BAR = INT64_MIN

# A stream's derived stores, parents, emitted counts and roll-ups: one block, at fixed
# offsets (what the first few intervals use lies within ~3 KB: one or two pages).
cdef enum:
    DERIVED_AT = 0
    PARENT_AT = MAX_DERIVED * 64                # sizeof(BarStore) <= 64 (checked at import)
    EMITTED_AT = PARENT_AT + MAX_DERIVED * 8
    ROLLUPS_AT = EMITTED_AT + MAX_DERIVED * 8   # a multiple of 64
    NAMES_AT = ROLLUPS_AT + MAX_DERIVED * 256       # sizeof(Rollup) (checked)
    ROLLUP_BLOCK = NAMES_AT + (MAX_DERIVED + 1) * 8
    # SymbolStream: the bytes a bar in order (or closing a bucket) reads, up to gaps.present
    # in the declared order (on 64-bit CPython).
    STREAM_HOT_END = 248
    STREAM_EVENTS_END = 376     # and what the events add (seen_n ... seen)

# (256 and 56 bytes on 64-bit platforms, less on 32-bit ones: the offsets above hold then too;
# the prefetches in SessionCore.add_bar assume 256, which only makes them less useful.)
if sizeof(Rollup) > 256 or sizeof(BarStore) > 64 or sizeof(Py_ssize_t) > 8:
    raise ImportError("sessiondata._core.stream: unexpected struct sizes (Rollup "
                      f"{sizeof(Rollup)}, BarStore {sizeof(BarStore)})")

# A store's growth on the bar path.  A symbol whose first DENSE_AT slots are (nearly) all
# present gets its stores sized once for the session's slots (when the session has no more
# than DENSE_MAX_ROWS of them): no store is grown again, no column is copied.  Any other
# symbol grows by an eighth at a time (store_reserve), which keeps the slack under 12.5 %
# for sparse ones.  flush() (the end of the symbol's stream) gives back what is unused.
cdef enum:
    DENSE_AT = 64
    DENSE_MAX_ROWS = 1 << 20

# Event kinds (Event.code); the names are Event.kind and the keys of SessionData.subscribe.
cdef enum:
    EV_GAP_OPENED = 0
    EV_GAP_CLOSED = 1
    EV_STALE = 2
    EV_BAR_CLOSED = 3
    EV_REVISED = 4
    EV_GAP_REVISED = 5
    SCAN_AHEAD = 8    # streams the clock's scan fetches ahead
    RUN_CAP = 16      # gap runs one step of the walker reports to the events (more are counted)
    MAX_REVS = 2 * MAX_DERIVED + 2    # revisions one revised bar can make (base, each bucket)

cdef int GAP_BITS = (1 << EV_GAP_OPENED) | (1 << EV_GAP_CLOSED) | (1 << EV_GAP_REVISED)

EVENT_KINDS = ("gap_opened", "gap_closed", "stale", "bar_closed", "revised", "gap_revised")


cdef extern from *:
    """
    /* Says "an exception is set" to Cython's error handling (the caller knows it is). */
    static inline int sd_error_is_set(void) { return -1; }
    /* The index of the lowest set bit of x != 0. */
    #if defined(__GNUC__) || defined(__clang__)
    #define sd_ctz(x) ((Py_ssize_t) __builtin_ctzll((unsigned long long) (x)))
    #else
    static inline Py_ssize_t sd_ctz(unsigned long long x) {
        Py_ssize_t i = 0;
        while (!(x & 1)) { x >>= 1; i++; }
        return i;
    }
    #endif
    """
    int _error_is_set "sd_error_is_set" () except -1
    Py_ssize_t sd_ctz(u64 x) noexcept nogil


cdef extern from *:
    """
    /* Copy n 8-byte words, each read on its own (volatile: never merged into wider loads). */
    static inline void sd_copy_words(void* dst, const void* src, Py_ssize_t n) {
        const volatile long long* s = (const volatile long long*) src;
        long long* d = (long long*) dst;
        Py_ssize_t i;
        for (i = 0; i < n; i++) d[i] = s[i];
    }
    """
    void sd_copy_words(void* dst, const void* src, Py_ssize_t n) noexcept nogil


cdef extern from *:
    """
    /* One field copied, read as it was written (volatile: never merged with its neighbour
       into one wider load, which the store buffer could not forward). */
    #define sd_copy_i64(dst, src) ((dst) = *(const volatile int64_t*) &(src))
    #define sd_copy_ssize(dst, src) ((dst) = *(const volatile Py_ssize_t*) &(src))
    """
    void sd_copy_i64(i64 dst, i64 src) noexcept nogil
    void sd_copy_ssize(Py_ssize_t dst, Py_ssize_t src) noexcept nogil


cdef extern from *:
    """
    /* An exact int of up to three 30-bit digits (every int64 nanosecond timestamp of the
       years 1677-2262 has three) as int64, without the generic conversion (Cython's own
       inline cases stop at two digits; the generic call costs ~90 instructions).  Returns 1
       and sets *out, or 0 when the caller must convert it the generic way. */
    #if PY_VERSION_HEX < 0x030B0000 && !defined(PYPY_VERSION) && !defined(Py_LIMITED_API)
    #include "longintrepr.h"        /* (Python.h includes it from 3.11 on) */
    #endif
    static inline int sd_ns_from_int(PyObject* x, int64_t* out) {
    #if !defined(PYPY_VERSION) && !defined(Py_LIMITED_API) && PyLong_SHIFT == 30
        const digit* d;
        Py_ssize_t n;
        int neg;
        uint64_t v;
        if (!PyLong_CheckExact(x)) return 0;
      #if PY_VERSION_HEX >= 0x030C0000
        {
            uintptr_t tag = ((PyLongObject*) x)->long_value.lv_tag;
            n = (Py_ssize_t) (tag >> 3);
            neg = (tag & 3) == 2;
            d = ((PyLongObject*) x)->long_value.ob_digit;
        }
      #else
        n = Py_SIZE(x);
        neg = n < 0;
        if (neg) n = -n;
        d = ((PyLongObject*) x)->ob_digit;
      #endif
        if (n == 0) { *out = 0; return 1; }
        if (n > 3 || (n == 3 && d[2] >= 8)) return 0;    /* 8 << 60 is 2**63 */
        v = (uint64_t) d[0];
        if (n > 1) v |= (uint64_t) d[1] << 30;
        if (n > 2) v |= (uint64_t) d[2] << 60;
        *out = neg ? (int64_t) (0 - v) : (int64_t) v;
        return 1;
    #else
        (void) x; (void) out;
        return 0;
    #endif
    }
    """
    bint sd_ns_from_int(object x, i64* out) noexcept


cdef extern from *:
    """
    /* A pool of blocks in transparent huge pages for the stores of dense streams (see
       _store_pool): with hundreds of symbols interleaved, each bar writes a row of its
       symbol's stores, each on a 4 KiB page of its own, and the page walks of the TLB misses
       (two-dimensional under a hypervisor) were what was left of a bar's cost at 700
       symbols.  Blocks come from 2 MiB-aligned chunks mapped with MADV_HUGEPAGE, in 1 KiB
       units, and go back to a free list per size.  A chunk whose blocks are all free is cut
       from again from its start; until then its pages are MADV_FREE (the kernel takes them
       back when it needs the memory; the next session finds them in place if not, with no
       2 MiB page cleared again, which under a hypervisor costs more than the bars).  Linux
       only: elsewhere sd_pool_alloc says no and the stores use malloc.  Every call holds
       sd_pool_lock. */
    #include "pythread.h"
    #if defined(__linux__)
    #include <sys/mman.h>
    #endif
    #define SD_UNIT ((size_t) 1024)
    #define SD_CLASSES 2048                     /* blocks of up to 2 MiB */
    #define SD_HUGE ((size_t) 2 << 20)
    #define SD_CHUNK ((size_t) 32 << 20)
    typedef struct sd_chunk {
        struct sd_chunk* next;
        char* base;          /* 2 MiB aligned, SD_CHUNK long */
        size_t used;         /* bytes handed out from base (bump) */
        size_t live;         /* blocks handed out and not given back */
    } sd_chunk;
    static sd_chunk* sd_chunks = NULL;          /* every chunk mapped */
    static sd_chunk* sd_current = NULL;         /* the one blocks are cut from */
    static void* sd_free_heads[SD_CLASSES + 1];  /* free blocks by size in units, linked */
    static PyThread_type_lock sd_pool_lock = NULL;
    static int sd_pool_on = 1;                  /* 0: every store uses malloc */

    static int sd_pool_init(int on) {
        sd_pool_on = on;
        if (sd_pool_lock == NULL) sd_pool_lock = PyThread_allocate_lock();
        return sd_pool_lock != NULL ? 0 : -1;
    }

    static sd_chunk* sd_chunk_of(void* p) {
        sd_chunk* c;
        for (c = sd_chunks; c != NULL; c = c->next)
            if ((char*) p >= c->base && (char*) p < c->base + SD_CHUNK) return c;
        return NULL;
    }

    #if defined(__linux__) && defined(MADV_HUGEPAGE)
    /* A chunk to cut from: an empty one if there is one, else a new mapping. */
    static sd_chunk* sd_chunk_next(void) {
        sd_chunk* c;
        char* raw;
        char* base;
        size_t head;
        for (c = sd_chunks; c != NULL; c = c->next)
            if (c->live == 0 && c != sd_current) return c;
        c = (sd_chunk*) malloc(sizeof(sd_chunk));
        if (c == NULL) return NULL;
        raw = (char*) mmap(NULL, SD_CHUNK + SD_HUGE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw == (char*) MAP_FAILED) { free(c); return NULL; }
        /* Only the 2 MiB-aligned SD_CHUNK bytes stay mapped: every huge page is whole. */
        head = (size_t) ((0 - (uintptr_t) raw) & (SD_HUGE - 1));
        base = raw + head;
        if (head) munmap(raw, head);
        munmap(base + SD_CHUNK, SD_HUGE - head);
        madvise(base, SD_CHUNK, MADV_HUGEPAGE);   /* (a refusal only costs the huge pages) */
        c->base = base;
        c->used = 0;
        c->live = 0;
        c->next = sd_chunks;
        sd_chunks = c;
        return c;
    }
    #endif

    /* Forget the free blocks that lie in chunk c (its blocks are all free). */
    static void sd_chunk_purge(sd_chunk* c) {
        size_t u;
        void** link;
        for (u = 1; u <= SD_CLASSES; u++) {
            link = &sd_free_heads[u];
            while (*link != NULL) {
                if ((char*) *link >= c->base && (char*) *link < c->base + SD_CHUNK)
                    *link = *(void**) *link;
                else
                    link = (void**) *link;
            }
        }
    }

    /* A block of at least `bytes` (1 KiB aligned); NULL: use malloc. */
    static void* sd_pool_alloc(size_t bytes) {
    #if defined(__linux__) && defined(MADV_HUGEPAGE)
        size_t u = (bytes + SD_UNIT - 1) / SD_UNIT;
        void* p;
        sd_chunk* c;
        if (u == 0 || u > SD_CLASSES || sd_pool_lock == NULL || !sd_pool_on) return NULL;
        PyThread_acquire_lock(sd_pool_lock, WAIT_LOCK);
        p = sd_free_heads[u];
        if (p != NULL) {
            sd_free_heads[u] = *(void**) p;
            c = sd_chunk_of(p);
        } else {
            c = sd_current;
            if (c == NULL || c->used + u * SD_UNIT > SD_CHUNK) {
                c = sd_chunk_next();
                if (c != NULL) {
                    c->used = 0;
                    sd_current = c;
                }
            }
            if (c != NULL) {
                p = c->base + c->used;
                c->used += u * SD_UNIT;
            }
        }
        if (c != NULL) c->live++;
        PyThread_release_lock(sd_pool_lock);
        return p;
    #else
        (void) bytes;
        return NULL;
    #endif
    }

    /* Give back a block of sd_pool_alloc (bytes: the size it was asked for). */
    static void sd_pool_free(void* p, size_t bytes) {
        size_t u = (bytes + SD_UNIT - 1) / SD_UNIT;
        sd_chunk* c;
        if (p == NULL) return;
        PyThread_acquire_lock(sd_pool_lock, WAIT_LOCK);
        c = sd_chunk_of(p);
        *(void**) p = sd_free_heads[u];
        sd_free_heads[u] = p;
        if (c != NULL && --c->live == 0) {
            /* All free: cut from its start again (the newest next, the others when it is
               full), its pages lent back to the kernel meanwhile. */
            sd_chunk_purge(c);
            if (c == sd_current) {
                c->used = 0;
            } else {
    #if defined(__linux__) && defined(MADV_FREE)
                madvise(c->base, c->used, MADV_FREE);
    #endif
                c->used = 0;
            }
        }
        PyThread_release_lock(sd_pool_lock);
    }
    """
    int sd_pool_init(int on) noexcept
    void* sd_pool_alloc(size_t nbytes) noexcept nogil
    void sd_pool_free(void* p, size_t nbytes) noexcept nogil


# SESSIONDATA_HUGEPAGES=0 (read once, here) keeps every store on malloc: on a VM a huge page
# first touched can cost 10-18 ms (the host backs it as it goes), so the first session of a
# process with hundreds of dense symbols pays ~0.3-0.6 s of such stalls; a short-lived
# process may prefer 4 KiB pages.  HUGE_PAGES says which it is.
HUGE_PAGES = os.environ.get("SESSIONDATA_HUGEPAGES", "1").strip().lower() not in (
    "0", "false", "no", "off")

if sd_pool_init(HUGE_PAGES) != 0:
    raise ImportError("sessiondata._core.stream: no lock for the store pool")


cdef void _store_release(BarStore* s) noexcept nogil:
    """Free a store's block (pooled or not); its rows are gone, n and max_rows stay."""
    if s.pooled:
        sd_pool_free(s.block, s.cap * s.stride)   # (the bytes it was asked for)
    else:
        free(s.block)
    s.block = NULL
    s.rows = NULL
    s.cap = 0
    s.pooled = False


cdef int _store_pool(BarStore* s, Py_ssize_t rows) noexcept nogil:
    """Move a store into a pooled block of at least ``rows`` rows (a dense stream's stores,
    sized once for the session's slots); -1 when the pool has none (nothing changed)."""
    cdef char* q
    if rows < s.n:
        rows = s.n
    q = <char*> sd_pool_alloc(<size_t> (rows * s.stride))
    if q == NULL:
        return -1
    if s.n > 0:
        memcpy(q, s.rows, s.n * s.stride)
    _store_release(s)
    s.block = q
    s.rows = q
    s.cap = rows        # (the block's last unit may hold more: the pool's, as malloc's own)
    s.pooled = True
    return 0


cdef int _store_unpool(BarStore* s, Py_ssize_t cap) noexcept nogil:
    """Move a pooled store into a malloc'd block of ``cap`` rows (at least its n); -1 when
    memory ran out (nothing changed)."""
    cdef BarStore t
    store_init(&t, s.with_counts)
    if store_resize(&t, cap if cap > s.n else s.n) != 0:
        return -1
    if s.n > 0:
        memcpy(t.rows, s.rows, s.n * s.stride)
    _store_release(s)
    s.block = t.block
    s.rows = t.rows
    s.cap = t.cap
    return 0


cdef int _store_size_once(BarStore* s, Py_ssize_t rows) noexcept nogil:
    """Size a dense stream's store for ``rows`` (its session's slots): in the pool where it
    can, else with malloc.  0, or -1 when memory ran out."""
    if rows * s.stride <= <Py_ssize_t> (2 << 20) and _store_pool(s, rows) == 0:
        return 0
    if s.pooled:
        return _store_unpool(s, rows)
    return store_resize(s, rows)


cdef int _store_trim(BarStore* s) noexcept nogil:
    """Give back the rows no bar uses (the end of a stream): a shrinking realloc, or for a
    pooled store, a move to malloc when more than an eighth of it is unused (the slack that
    growth allows; a dense store rarely has that much).  0, or -1 when memory ran out (the
    store is kept as it was)."""
    if s.cap <= s.n or s.n == 0:
        return 0
    if s.pooled:
        if (s.cap - s.n) * 8 <= s.cap:
            return 0
        return _store_unpool(s, s.n)
    return store_resize(s, s.n)

cdef extern from *:
    """
    /* A hint to the cache: load the line holding p, to be written.  Never faults, whatever
       p is (a stale address only costs a wasted fetch). */
    #if defined(__GNUC__) || defined(__clang__)
    #define sd_prefetch(p) __builtin_prefetch((const void*) (p), 1, 3)
    #else
    #define sd_prefetch(p) ((void) (p))
    #endif
    """
    void sd_prefetch(const void* p) noexcept nogil


# One slot of the registry's lookup cache (SessionCore): a symbol string object as the
# caller passes it, and its stream; both owned.  ``next_*``: where the bar that followed this
# symbol's bar last time read and wrote (that symbol's string, cache slot, stream object, next
# base row, roll-up), fetched into the cache when this symbol's next bar comes: a feed that
# hands its symbols over in the same order every slot finds the next bar's state in the cache.
# Only ever prefetched, never read through: a stale address costs a wasted fetch, no fault.
cdef struct CacheSlot:
    PyObject* key
    PyObject* stream
    const char* next_key
    const char* next_slot
    const char* next_stream
    const char* next_row
    const char* next_rollup
    const char* next_close      # the row its next bar's finest bucket closes into, or NULL


# One registered stream as the clock's scan reads it (SessionCore._scan_build): the registry's
# key and the entry's stream, both owned, in the registry's order, and the stream's base
# interval (set when the stream is, with the table emptied on any change of the registry).
cdef struct ScanEntry:
    PyObject* key
    PyObject* stream
    i64 base_ns


# One subscriber as the delivery loop reads it (SessionCore._subs_build): the callable and
# the kinds it wants without unpacking its tuple (and converting the mask) on every event.
cdef struct Subscriber:
    PyObject* fn            # the callback (the tuple's reference)
    PyObject* intervals     # frozenset of interval names, NULL: the base's gap events only
    PyObject* sub           # the subscriber's tuple, owned
    int mask                # the kinds (1 << Event.code)


cdef inline void _follow(GapWalker* seen, const GapWalker* gaps) noexcept nogil:
    """seen = gaps, 8 bytes at a time.  The bar path has just written the walker's fields one
    by one; a struct copy (which the compiler makes of 16-byte loads) reads them back wider
    than they were stored, which the store buffer cannot forward: a stall on every bar with
    events on."""
    sd_copy_words(seen, gaps, sizeof(GapWalker) // 8)


cdef inline i64 _grace_until(i64 now_ns, i64 base_ns, i64 grace) noexcept nogil:
    """now_ns less grace slots of base_ns (saturated): slots ending by then are missing."""
    if grace <= 1:      # the default: no division on the bar path
        return sub_sat(now_ns, base_ns if grace == 1 else 0)
    if base_ns > INT64_MAX // grace:
        return INT64_MIN
    return sub_sat(now_ns, base_ns * grace)


cdef inline Py_ssize_t _search(BarStore* s, i64 x) noexcept nogil:
    """The first row of a store whose ts is >= x (binary search; rows are sorted)."""
    cdef Py_ssize_t lo = 0, hi = s.n, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if store_row(s, mid).ts < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline int _store_insert(BarStore* s, Py_ssize_t i, i64 t, f64 o, f64 h, f64 l, f64 c,
                              f64 v, i64 count, f64 coverage) noexcept nogil:
    """Insert one bar at row i (the rows from i move up one); -1 when memory ran out."""
    cdef Py_ssize_t m = s.n - i
    if s.n >= s.cap and store_reserve(s, s.n + 1) != 0:
        return -1
    if m > 0:
        memmove(store_row(s, i + 1), store_row(s, i), m * s.stride)
    s.n += 1
    store_set(s, i, t, o, h, l, c, v, count, coverage)
    return 0


# One bar, and one change a revision made (kept in C: a revision runs no Python code, so no
# other thread can come in while the stores are being mended).
cdef struct Revision:
    Py_ssize_t k        # the interval (-1: the base)
    bint had_old        # False: the slot or bucket was empty
    BarRow old
    BarRow new


cdef inline BarRow _row(BarStore* s, Py_ssize_t i) noexcept nogil:
    cdef BarRow r
    cdef BarRow* q = store_row(s, i)
    r.ts = q.ts
    r.open = q.open
    r.high = q.high
    r.low = q.low
    r.close = q.close
    r.volume = q.volume
    r.count = q.count if s.with_counts else 1       # (a base row has no count: 48 bytes)
    r.coverage = q.coverage if s.with_counts else 1.0
    return r


cdef inline bint _same(BarRow a, BarRow b) noexcept nogil:
    return (a.ts == b.ts and a.open == b.open and a.high == b.high and a.low == b.low
            and a.close == b.close and a.volume == b.volume and a.count == b.count
            and a.coverage == b.coverage)


cdef dict _bar_dict(BarRow r):
    return {"ts": r.ts, "open": r.open, "high": r.high, "low": r.low, "close": r.close,
            "volume": r.volume, "count": r.count, "coverage": r.coverage}


@cython.auto_pickle(False)
@cython.no_gc       # many short-lived events: kept out of the cyclic GC (they hold no cycles)
@cython.freelist(256)
cdef class Event:
    """One event of a live session, handed to the callbacks of ``SessionData.subscribe``.

    Attributes
    ----------
    kind : str
        ``"gap_opened"``, ``"gap_closed"``, ``"gap_revised"``, ``"stale"``, ``"bar_closed"``
        or ``"revised"``.
    symbol : str
    interval : str
        The base interval for gap and stale events; the derived (or base) interval of the
        bar for ``bar_closed`` and ``revised``.
    ts : int
        ns UTC: the gap's first slot (gap events), the first silent slot (stale), the
        bar's label (bar_closed, revised).
    end_ns : int
        The gap's exclusive end (gap_closed: final; gap_opened: so far; gap_revised: as it
        was told); stale: the time up to which slots were counted.
    bar_count : int
        The gap's missing slots (gap_closed: final; gap_opened: so far; gap_revised: as
        told); stale: the slots missing so far.
    bar : dict or None
        bar_closed: the derived bar; revised: the bar as revised.
    old : dict or None
        revised: the bar before (None when its slot or bucket was empty, a gap).
    gap : GapInfo or None
        gap_closed: the gap (set by ``SessionData``).
    """
    cdef readonly int code
    cdef readonly object symbol
    cdef readonly object interval
    cdef readonly i64 ts
    cdef readonly i64 end_ns
    cdef readonly i64 bar_count
    cdef f64 _o, _h, _l, _c, _v, _cov
    cdef i64 _count
    # One field for what few events carry (fewer fields: a cheaper event): revised, the
    # (old, new) bars; gap_closed, the registry that makes its GapInfo, then the GapInfo.
    cdef object _more
    cdef bint _gap_made
    cdef readonly bint derived      # a gap event of a derived interval

    @property
    def kind(self):
        return EVENT_KINDS[self.code]

    @property
    def gap(self):
        if self.code != EV_GAP_CLOSED and self.code != EV_GAP_OPENED \
                and self.code != EV_GAP_REVISED:
            return None
        if not self._gap_made and self._more is not None:
            self._more = self._more._gap_info(self)     # made on demand: datetimes cost
            self._gap_made = True
        return self._more if self._gap_made else None

    @property
    def old(self):
        return self._more[0] if self.code == EV_REVISED else None

    @property
    def bar(self):
        if self.code == EV_BAR_CLOSED:
            return {"ts": self.ts, "open": self._o, "high": self._h, "low": self._l,
                    "close": self._c, "volume": self._v, "count": self._count,
                    "coverage": self._cov}
        return self._more[1] if self.code == EV_REVISED else None

    def __repr__(self):
        if self.code == EV_BAR_CLOSED:
            detail = f"bar={self.bar}"
        elif self.code == EV_REVISED:
            detail = f"old={self.old}, new={self.bar}"
        else:
            detail = f"end_ns={self.end_ns}, bar_count={self.bar_count}"
        return (f"Event({self.kind}, {self.symbol}, {self.interval}, "
                f"ts={np.datetime64(self.ts, 'ns')}, {detail})")


# Events that were delivered and kept by nobody (the batch list held their only reference)
# are reused by the next ones (_empty_list gives them here): no object is freed and made again
# per event, which costs more than the fields set below (the type's new and dealloc, the
# freelist's memset and init).  Touched with the GIL held only.
cdef enum:
    EVENT_POOL = 64
cdef PyObject* _ev_pool[EVENT_POOL]
cdef Py_ssize_t _ev_pool_n = 0


cdef inline Event _event(int code, object symbol, object interval, i64 ts, i64 end_ns,
                         i64 bar_count):
    global _ev_pool_n
    cdef Event ev
    if _ev_pool_n:
        _ev_pool_n -= 1
        ev = <Event> _ev_pool[_ev_pool_n]
        Py_XDECREF(_ev_pool[_ev_pool_n])     # the pool's reference: ev holds its own
        ev.derived = False                   # (_more is None: see _empty_list)
        ev._gap_made = False
    else:
        ev = Event.__new__(Event)
    ev.code = code
    ev.symbol = symbol
    ev.interval = interval
    ev.ts = ts
    ev.end_ns = end_ns
    ev.bar_count = bar_count
    return ev


cdef inline Event _bar_closed(object symbol, object interval, const BarRow* q):
    """The bar_closed event of a derived bar's row (``collect`` and the direct delivery)."""
    cdef Event ev = _event(EV_BAR_CLOSED, symbol, interval, q.ts, NO_BAR, 0)
    ev._o = q.open
    ev._h = q.high
    ev._l = q.low
    ev._c = q.close
    ev._v = q.volume
    ev._count = q.count
    ev._cov = q.coverage
    return ev


cdef inline void _event_release(PyObject* p) noexcept:
    """Drop a reference to an event: one that nobody else holds goes to the pool (the
    reference dropped becomes the pool's), the others are freed without Python code."""
    global _ev_pool_n
    if (_ev_pool_n < EVENT_POOL and _refcnt(p) == 1 and _type_of(p) == <void*> Event
            and (<Event> p)._more is None):
        _ev_pool[_ev_pool_n] = p
        _ev_pool_n += 1
    else:
        Py_XDECREF(p)


cdef inline void _empty_list(list items) noexcept:
    """Empty a list of events and keep its allocation (``del items[:]`` frees it, and the
    next events would allocate it again); the events nobody else holds go to the pool."""
    cdef Py_ssize_t i, n = PyList_GET_SIZE(items)
    Py_SET_SIZE(items, 0)      # first: the list never shows an item being freed
    for i in range(n):
        # (the macro reads the array, past the size now)
        _event_release(PyList_GET_ITEM(items, i))


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


cdef inline i64 _grid_end(const i64* g_open, const i64* g_close, Py_ssize_t n, i64 step_ns,
                          i64 t) noexcept nogil:
    """The end of the slot (bucket) of a grid that starts at t."""
    cdef GridCursor g
    g.window = 0
    g.slot_start = NO_BAR
    g.slot_end = NO_BAR
    if not grid_locate(&g, g_open, g_close, n, step_ns, t):
        return t
    return g.slot_end


cdef inline i64 _grid_run_end(const i64* g_open, const i64* g_close, Py_ssize_t n,
                              i64 step_ns, i64 start, i64 count) noexcept nogil:
    """The exclusive end of a run of count slots of a grid from start (inside one window)."""
    cdef GridCursor g
    g.window = 0
    g.slot_start = NO_BAR
    g.slot_end = NO_BAR
    if count <= 0 or not grid_locate(&g, g_open, g_close, n, step_ns, start):
        return start
    if step_ns <= 0:
        return g_close[g.window]     # a session's bar: the run ends at its close
    # As the batch says it (find_gaps): past the close when the window's last bucket is short.
    return run_end(start, count, step_ns)


@cython.final       # the per-bar path calls its methods directly (no vtable), inlined
cdef class SymbolStream:
    """Base bars of one symbol in one session, and every derived interval made from them.

    Parameters
    ----------
    w_open, w_close : int64 arrays
        The session's windows, [open, close) in ns UTC, sorted.
    base_ns : int
        The base interval.
    """
    # Fields in the order the per-bar path reads them: with hundreds of streams interleaved
    # each bar's stream is a cache miss away, so what one bar in order touches sits in the
    # object's first ~224 bytes (four cache lines at most; SessionCore.add_bar prefetches
    # them, see CacheSlot), what the events add comes next, and what only revisions and
    # closing buckets use comes after or lives on the heap.
    cdef readonly bint busy
    cdef public bint volume_optional   # bars without volume: NaN volume is no fault
    cdef readonly i64 last_ns
    cdef readonly i64 base_ns
    # Kept so that a bar in order reads no roll-up it does not feed: a bar before late_until
    # may be late (max closed_until); cascaded buckets end at cascade_due at the earliest.
    cdef i64 late_until
    cdef GridCursor cursor
    cdef const i64* w_open
    cdef const i64* w_close
    cdef Py_ssize_t n_windows
    cdef BarStore base           # (its fields past with_counts are cold)
    cdef unsigned int base_fed     # bit k: derived interval k is fed from the base bars
    cdef Py_ssize_t n_cascaded     # derived intervals fed from a finer derived one
    cdef Rollup* rollups         # 64-byte aligned inside rollups_block
    cdef BarStore* derived       # (in rollups_block too, after the roll-ups)
    cdef Py_ssize_t* parent      # the interval each derived one is fed from (-1: the base)
    cdef Py_ssize_t n_derived
    cdef i64 cascade_due
    cdef readonly i64 last_closed  # derived bars the last accepted bar closed
    cdef GapWalker gaps          # (window, next_slot, present first: the rest is cold)
    # Events (see collect/scan): what was already reported, so that the bar path records
    # nothing of its own; only a session with subscribers looks at these.
    cdef Py_ssize_t seen_n       # base rows as of the last collect
    # What the clock announced ahead of the bars (scan): every missing slot of the base grid
    # from the walker's next slot up to ann_until was told (gap_opened; gap_closed too for a
    # run that ends at its window's close by then, or for all with ann_final).  NO_BAR: none.
    cdef i64 ann_until
    cdef Py_ssize_t n_revs
    cdef i64 counted_for         # the registry's scan this stream was counted current for
    cdef Py_ssize_t scan_idx     # its row in the registry's scan table (SessionCore._scan_build)
    cdef bint stale_sent         # stale reported for the gap that is open
    cdef bint rg_on
    cdef bint ann_final
    cdef public bint derived_gaps
    cdef GapWalker seen          # the base gap walker as of the last collect
    # -- colder ---------------------------------------------------------------------------
    cdef void* rollups_block
    cdef i64 rejected[N_FAULTS]
    cdef list _keep              # keeps every grid array alive: the C side points into them
    # Interval names (``names``): the base, then derived 0, 1, ...; the objects in a C array
    # of their own (owned references), which an event reads without a list's two lines.
    cdef tuple _names
    cdef PyObject** name_at
    cdef Py_ssize_t n_names
    cdef readonly i64 revised    # bars taken by revise (late, out of order, replaced)
    # A gap behind the bars that an out-of-order bar (revise) shrank or split: [rg_s, rg_e)
    # as it was told, and the slot filled (told as gap_revised and what remains).
    cdef i64 rg_s, rg_e, rg_n, rg_t, rg_t_end
    # Heap arrays (MAX_DERIVED or MAX_REVS long), off the object's hot lines.
    cdef Py_ssize_t* emitted     # derived rows already reported as bar_closed (in rollups_block)
    cdef Revision* revs          # what the last revise changed, for collect
    # Gap events of the derived intervals, only while a subscriber asks for them: each
    # interval's gap walker as of the last collect, and what a revision did to a told gap.
    cdef GapWalker* dseen
    cdef bint* drg_on
    cdef i64* drg_s
    cdef i64* drg_e
    cdef i64* drg_t
    cdef i64* drg_t_end

    def __cinit__(self):
        cdef char* at
        store_init(&self.base, False)
        # One block, 64-byte aligned: the derived stores, parent, the roll-ups, the interval
        # names, at fixed offsets from each other (what SessionCore.add_bar prefetches).
        self.rollups_block = calloc(1, ROLLUP_BLOCK + 64)
        if self.rollups_block != NULL:
            at = <char*> self.rollups_block + ((0 - <size_t> self.rollups_block) & 63)
            self.derived = <BarStore*> (at + DERIVED_AT)
            self.parent = <Py_ssize_t*> (at + PARENT_AT)
            self.emitted = <Py_ssize_t*> (at + EMITTED_AT)
            self.rollups = <Rollup*> (at + ROLLUPS_AT)
            self.name_at = <PyObject**> (at + NAMES_AT)
        self.revs = <Revision*> calloc(MAX_REVS, sizeof(Revision))
        self.dseen = <GapWalker*> calloc(MAX_DERIVED, sizeof(GapWalker))
        self.drg_on = <bint*> calloc(MAX_DERIVED, sizeof(bint))
        self.drg_s = <i64*> calloc(4 * MAX_DERIVED, sizeof(i64))
        if (self.derived == NULL or self.rollups_block == NULL or self.parent == NULL
                or self.revs == NULL or self.dseen == NULL
                or self.drg_on == NULL or self.drg_s == NULL):
            raise MemoryError()
        self.drg_e = self.drg_s + MAX_DERIVED
        self.drg_t = self.drg_s + 2 * MAX_DERIVED
        self.drg_t_end = self.drg_s + 3 * MAX_DERIVED
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
        if self.base.pooled and self.base.cap < self.base.max_rows:
            _store_release(&self.base)      # (a pooled store is never grown: see _store_pool)
        self.n_derived = 0
        self.n_cascaded = 0
        self.base_fed = 0
        self.late_until = NO_BAR
        self.cascade_due = INT64_MAX
        self.last_ns = NO_BAR
        self.last_closed = 0
        self.cursor.window = 0
        self.cursor.slot_start = NO_BAR
        self.cursor.slot_end = NO_BAR
        walker_start(&self.gaps, self.w_open, self.n_windows)
        for i in range(N_FAULTS):
            self.rejected[i] = 0
        self.revised = 0
        self.counted_for = NO_BAR
        self.names = ()
        self.n_revs = 0
        self.sync_events()

    def __dealloc__(self):
        cdef Py_ssize_t k
        _store_release(&self.base)
        if self.derived != NULL:
            for k in range(MAX_DERIVED):  # calloc'd: stores never used hold NULLs
                _store_release(&self.derived[k])
        free(self.rollups_block)
        free(self.revs)
        free(self.dseen)
        free(self.drg_on)
        free(self.drg_s)

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
        cdef BarStore* src
        cdef BarRow* q
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
        if self.derived[k].block == NULL:
            store_init(&self.derived[k], True)
        self.derived[k].n = 0       # a reset stream keeps its buffers
        self.derived[k].max_rows = _slots(&go[0], &gc[0], go.shape[0], step_ns)
        if self.derived[k].pooled and self.derived[k].cap < self.derived[k].max_rows:
            _store_release(&self.derived[k])
        r = &self.rollups[k]
        rollup_init(r, &go[0], &gc[0], &gb[0], &gl[0], go.shape[0], step_ns, self.base_ns)
        self.parent[k] = p
        self.n_derived = k + 1
        if p >= 0:
            self.n_cascaded += 1
        else:
            self.base_fed |= 1u << k
        if p >= 0:
            r.feed_step = best
            src = &self.derived[p]
            for i in range(src.n):
                q = store_row(src, i)
                rc = rollup_feed(r, q.ts, q.open, q.high, q.low, q.close, q.volume, q.count,
                                 &self.derived[k])
                if rc < 0:
                    break
        else:
            src = &self.base
            for i in range(src.n):
                q = store_row(src, i)
                rc = rollup_feed(r, q.ts, q.open, q.high, q.low, q.close, q.volume, 1,
                                 &self.derived[k])
                if rc < 0:
                    break
        if rc < 0:
            raise MemoryError("no memory left for derived bars")
        if p >= 0 and self.last_ns != NO_BAR:
            # As if fed bar by bar: a bucket that ended before the last bar is complete.
            if self._close_ended(self.last_ns, False, True) < 0:
                raise MemoryError("no memory left for derived bars")
        self._bounds()
        self.emitted[k] = self.derived[k].n    # bars made from what was held: no events
        self.dseen[k] = r.gaps
        self.drg_on[k] = False
        return k

    cdef void _bounds(self) noexcept nogil:
        """Recompute late_until and cascade_due from the roll-ups (after anything but the
        per-bar path changed them)."""
        cdef Py_ssize_t k
        cdef i64 late = NO_BAR, due = INT64_MAX
        for k in range(self.n_derived):
            if self.rollups[k].closed_until > late:
                late = self.rollups[k].closed_until
            if self.parent[k] >= 0 and self.rollups[k].bucket.active \
                    and self.rollups[k].bucket.end < due:
                due = self.rollups[k].bucket.end
        self.late_until = late
        self.cascade_due = due

    cdef int _cascade(self, Py_ssize_t k, int closed) noexcept nogil:
        """Feed the bars derived interval k just closed (its last ``closed`` rows) to the
        intervals fed from it.  Returns the bars closed in all, or -1 when memory ran out."""
        cdef Py_ssize_t j, i
        cdef BarStore* src = &self.derived[k]
        cdef BarRow* q
        cdef int total = 0, rc
        i = src.n - closed
        for j in range(k + 1, self.n_derived):
            if self.parent[j] != k:
                continue
            if store_row(src, i).ts < self.rollups[j].closed_until or (
                    self.rollups[j].bucket.active and store_row(src, i).ts < self.rollups[j].bucket.start):
                # A bar for a bucket already closed (advance closed it before its finer bars
                # came, which only the revise policy takes): revised, never opened again.
                rc = self._cascade_late(k, j, i, src.n)
                if rc < 0:
                    return -1
                total += rc
                continue
            q = store_row(src, i)
            rc = rollup_run(&self.rollups[j], &q.ts, &q.open, &q.high, &q.low, &q.close,
                            &q.volume, &q.count, closed, src.stride // 8, &self.derived[j])
            if rc < 0:
                return -1
            if rc > 0:
                total += rc
                rc = self._cascade(j, rc)
                if rc < 0:
                    return -1
                total += rc
        return total

    cdef int _grow(self, Py_ssize_t need) noexcept nogil:
        """Make room for need base rows (the bar path's growth, see DENSE_AT): the
        session's slots at once for a dense symbol (its derived stores too), else an eighth
        more.  0, or -1 when memory ran out (nothing is lost)."""
        cdef Py_ssize_t k
        cdef BarStore* d
        if (self.base.cap >= DENSE_AT and need <= self.base.max_rows <= DENSE_MAX_ROWS
                and self.gaps.missing * 16 <= self.gaps.present):
            if _store_size_once(&self.base, self.base.max_rows) != 0:
                return -1
            for k in range(self.n_derived):
                d = &self.derived[k]
                if d.cap < d.max_rows <= DENSE_MAX_ROWS and _store_size_once(d, d.max_rows) != 0:
                    return -1
            return 0
        return store_reserve(&self.base, need)

    cdef int _trim(self) noexcept nogil:
        """Give back the rows no bar uses (the end of the symbol's stream)."""
        cdef Py_ssize_t k
        cdef int rc = 0
        rc |= _store_trim(&self.base)
        for k in range(self.n_derived):
            rc |= _store_trim(&self.derived[k])
        return rc

    cdef inline int _accept(self, i64 t, f64 o, f64 h, f64 l, f64 c, f64 v) noexcept nogil:
        """Validate, store and roll up one bar; its fault code (FAULT_NONE when accepted)."""
        cdef uint8_t f = price_fault(o, h, l, c, v, self.volume_optional)
        cdef GridCursor probe
        cdef Py_ssize_t k
        cdef int rc
        cdef i64 closed = 0
        cdef unsigned int fed
        cdef Rollup* r
        if f != FAULT_NONE:
            return f
        if t <= self.last_ns and not (t == NO_BAR and self.base.n == 0):
            # (NO_BAR is also the int64 minimum: a first bar may lie there.)
            return FAULT_DUPLICATE if t == self.last_ns else FAULT_UNSORTED
        probe = self.cursor
        # (The cursor is set once a bar was taken; before, its NO_BAR end is no slot.)
        if not grid_next(&probe, self.w_open, self.w_close, self.n_windows, self.base_ns, t,
                         self.base.n != 0):
            return FAULT_OUTSIDE
        if t != probe.slot_start:
            return FAULT_MISALIGNED
        if t < self.late_until:
            for k in range(self.n_derived):
                # A bucket closed early (advance, flush) must not get a second bar.
                if t < self.rollups[k].closed_until and not self.rollups[k].bucket.active:
                    return FAULT_LATE
        if self.base.n >= self.base.cap and self._grow(self.base.n + 1) != 0:
            return FAULT_OVERFLOW
        store_set(&self.base, self.base.n, t, o, h, l, c, v, 1, 1.0)
        self.base.n += 1
        self.cursor = probe
        if t == self.gaps.next_slot and self.gaps.window == probe.window:
            # The walker's next slot (no gap before it): what walker_step_to does then.
            self.gaps.present += 1
            self.gaps.next_slot = probe.slot_end
        else:
            walker_step_to(&self.gaps, self.w_open, self.w_close, self.n_windows,
                           self.base_ns, t, NULL, NULL, 0, 0, &rc)
        fed = self.base_fed
        k = 0
        while fed:
            if fed & 1u:
                r = &self.rollups[k]
                if r.bucket.active and t < r.bucket.end and t < r.bucket.close_at:
                    # Inside the bucket being built, not its last slot: what rollup_feed
                    # does then, without the call.
                    bucket_add(&r.bucket, h, l, c, v, 1)
                else:
                    rc = rollup_feed(r, t, o, h, l, c, v, 1, &self.derived[k])
                    if rc > 0:
                        closed += rc
                        rc = self._cascade(k, rc)
                    if rc < 0:
                        return FAULT_OVERFLOW
                    closed += rc
            fed >>= 1
            k += 1
        if self.n_cascaded and (closed or t >= self.cascade_due):
            # A coarser bucket fed from a finer interval waits for closed finer bars; one
            # that ended before this bar is complete now, as it would be if fed directly.
            rc = self._close_ended(t, False, True)
            if rc < 0:
                return FAULT_OVERFLOW
            closed += rc
        if closed:
            self._bounds()
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
            if not grid_next(&probe, self.w_open, self.w_close, self.n_windows, self.base_ns,
                             tt, i > first or self.base.n != 0):
                f = FAULT_OUTSIDE
                probe = self.cursor
                break
            if tt != probe.slot_start:
                f = FAULT_MISALIGNED
                probe = self.cursor
                break
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
            closed = rollup_run(&self.rollups[k], t, o, h, lo, c, v, NULL, m, 1,
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
        self._bounds()
        self.last_ns = t[m - 1]
        return 0

    # -- late bars (the revise policy) -----------------------------------------------------

    def push_revising(self, ts, open, high, low, close, volume, object symbol=None,
                      list out=None):
        """Offer arrays of base bars under the revise policy, in one compiled pass: runs of
        rows in order go in as ``push_many`` takes them, a row out of order, repeated or
        late revises what is held (``revise``), another faulty row is dropped and counted.
        With ``out`` the events of each revision are collected into it as they happen
        (``collect``).  Returns how many rows were taken."""
        cdef const i64[::1] t = as_i64(ts, "ts")
        cdef const f64[::1] o = np.ascontiguousarray(open, dtype=np.float64)
        cdef const f64[::1] h = np.ascontiguousarray(high, dtype=np.float64)
        cdef const f64[::1] lo = np.ascontiguousarray(low, dtype=np.float64)
        cdef const f64[::1] c = np.ascontiguousarray(close, dtype=np.float64)
        cdef const f64[::1] v = np.ascontiguousarray(volume, dtype=np.float64)
        cdef Py_ssize_t i = 0, j, n = t.shape[0]
        cdef i64 accepted = 0
        cdef int f = FAULT_NONE
        cdef bint record = out is not None
        if not (o.shape[0] == h.shape[0] == lo.shape[0] == c.shape[0] == v.shape[0] == n):
            raise ValueError("columns differ in length")
        if self.busy:
            raise RuntimeError("stream is busy with a batch; serialise calls on one stream")
        if n == 0:
            return 0
        while i < n:
            j = self._sound_run(&t[0], &o[0], &h[0], &lo[0], &c[0], &v[0], i, n, &f)
            if j > i:
                if self._take_run(&t[i], &o[i], &h[i], &lo[i], &c[i], &v[i], j - i) != 0:
                    raise MemoryError("no memory left for bars")
                accepted += j - i
            if j >= n:
                break
            if f == FAULT_UNSORTED or f == FAULT_DUPLICATE or f == FAULT_LATE:
                if record:
                    self.collect(symbol, out)      # the events of the rows before it
                f = self._revise_bar(t[j], o[j], h[j], lo[j], c[j], v[j], record)
                if record:
                    self.collect(symbol, out)
            if f == FAULT_NONE:
                accepted += 1
            else:
                self.rejected[f] += 1
            i = j + 1
        return accepted

    def revise(self, i64 ts, f64 open, f64 high, f64 low, f64 close, f64 volume,
               bint record=False):
        """Take a bar that ``push`` refuses as unsorted, duplicated or late: it fills (or
        replaces) its slot and every derived bucket it belongs to is made again from the bars
        it holds, with the live gap counters.  Returns 0, or the fault that still refuses it
        (prices, outside, misaligned; not counted).  With ``record`` the old and new bars are
        kept for ``collect`` (``revised`` events)."""
        if self.busy:
            raise RuntimeError("stream is busy with a batch; serialise calls on one stream")
        return self._revise_bar(ts, open, high, low, close, volume, record)

    cdef int _revise_bar(self, i64 t, f64 o, f64 h, f64 l, f64 c, f64 v,
                         bint record) except -1:
        cdef uint8_t f = price_fault(o, h, l, c, v, self.volume_optional)
        cdef GridCursor probe
        cdef Py_ssize_t i, k
        cdef bint in_order, replaced, left, right
        cdef int rc = 0
        cdef BarStore* b = &self.base
        cdef Revision* rv
        if f != FAULT_NONE:
            return f
        probe.window = 0
        probe.slot_start = NO_BAR
        probe.slot_end = NO_BAR
        if not grid_locate(&probe, self.w_open, self.w_close, self.n_windows, self.base_ns, t):
            return FAULT_OUTSIDE
        if t != probe.slot_start:
            return FAULT_MISALIGNED
        in_order = b.n == 0 or t > self.last_ns
        i = _search(b, t)
        replaced = i < b.n and store_row(b, i).ts == t
        self.n_revs = 0
        self.rg_on = False
        rv = &self.revs[0]
        rv.k = -1
        rv.had_old = replaced
        if replaced:
            rv.old = _row(b, i)
            store_set(b, i, t, o, h, l, c, v, 1, 1.0)
        elif _store_insert(b, i, t, o, h, l, c, v, 1, 1.0) != 0:
            raise MemoryError("no memory left for bars")
        rv.new = _row(b, i)
        if record:
            self.n_revs = 1
        if in_order:
            # Next in line for the base (only a derived bucket closed by advance refused it).
            self.cursor = probe
            walker_step_to(&self.gaps, self.w_open, self.w_close, self.n_windows,
                           self.base_ns, t, NULL, NULL, 0, 0, &rc)
            self.last_ns = t
        elif not replaced:
            # A slot counted missing is filled: its run shrinks, splits in two, or ends.
            self.gaps.present += 1
            self.gaps.missing -= 1
            left = t == self.w_open[probe.window] or (i > 0 and store_row(b, i - 1).ts == t - self.base_ns)
            right = probe.slot_end == self.w_close[probe.window] or (
                i + 1 < b.n and store_row(b, i + 1).ts == probe.slot_end)
            if left and right:
                self.gaps.runs -= 1
            elif not left and not right:
                self.gaps.runs += 1
            if record:
                # The gap the slot lay in, as it was told (bars on both sides of it, or the
                # window's edges): told again as gap_revised and the runs that remain.
                self.rg_on = True
                self.rg_t = t
                self.rg_t_end = probe.slot_end
                self.rg_s = self.w_open[probe.window]
                if i > 0 and store_row(b, i - 1).ts >= self.rg_s:
                    self.rg_s = store_row(b, i - 1).ts + self.base_ns
                self.rg_e = self.w_close[probe.window]
                if i + 1 < b.n and store_row(b, i + 1).ts < self.rg_e:
                    self.rg_e = store_row(b, i + 1).ts
                self.rg_n = <i64> slots_from(self.rg_s, self.rg_e, self.base_ns)
        self.last_closed = 0
        for k in range(self.n_derived):
            if self._revise_bucket(k, t, o, h, l, c, v, in_order, record) < 0:
                raise MemoryError("no memory left for derived bars")
        if in_order and self.n_cascaded:
            rc = self._close_ended(t, False, True)
            if rc < 0:
                raise MemoryError("no memory left for derived bars")
            self.last_closed += rc
        if not in_order:
            # Out of order: the gap counters were mended above; the events' walker follows.
            self.seen = self.gaps
            self.seen_n = b.n
        self._bounds()
        self.revised += 1
        return FAULT_NONE

    cdef int _feed_counted(self, Py_ssize_t k, i64 t, f64 o, f64 h, f64 l, f64 c, f64 v,
                           i64 count) noexcept nogil:
        """Feed one in-order bar to derived interval k, cascade what it closes, count the
        bars closed in ``last_closed``.  0, or -1 when memory ran out."""
        cdef int rc = rollup_feed(&self.rollups[k], t, o, h, l, c, v, count,
                                  &self.derived[k])
        if rc > 0:
            self.last_closed += rc
            rc = self._cascade(k, rc)
            if rc > 0:
                self.last_closed += rc
        return -1 if rc < 0 else 0

    cdef int _cascade_late(self, Py_ssize_t k, Py_ssize_t j, Py_ssize_t i0,
                           Py_ssize_t n) noexcept nogil:
        """Rows i0..n of interval k into interval j one by one: a row whose bucket of j was
        closed revises it (and the buckets fed from j that hold it), the others are fed.
        Returns the bars closed, or -1 when memory ran out."""
        cdef BarStore* src = &self.derived[k]
        cdef Rollup* r = &self.rollups[j]
        cdef Py_ssize_t i
        cdef GridCursor probe
        cdef bint passed
        cdef int rc, total = 0
        cdef BarRow* q
        for i in range(i0, n):
            probe.window = 0
            probe.slot_start = NO_BAR
            probe.slot_end = NO_BAR
            passed = False
            if grid_locate(&probe, r.g_open, r.g_close, r.n_windows, r.step_ns, store_row(src, i).ts):
                passed = (probe.slot_start < r.bucket.start if r.bucket.active
                          else probe.slot_start < r.closed_until)
            if passed:
                if self._revise_up(j, store_row(src, i).ts) < 0:
                    return -1
                continue
            q = store_row(src, i)
            rc = rollup_feed(r, q.ts, q.open, q.high, q.low, q.close, q.volume, q.count,
                             &self.derived[j])
            if rc > 0:
                total += rc
                rc = self._cascade(j, rc)
            if rc < 0:
                return -1
            total += rc
        return total

    cdef int _revise_up(self, Py_ssize_t j, i64 t) noexcept nogil:
        """Make interval j's bucket holding t again from its finer bars, then the buckets
        of the intervals fed from j that hold t.  0, or -1 when memory ran out."""
        cdef Py_ssize_t c
        if self._revise_bucket(j, t, 0.0, 0.0, 0.0, 0.0, 0.0, False, True) < 0:
            return -1
        for c in range(j + 1, self.n_derived):
            if self.parent[c] == j and self._revise_up(c, t) < 0:
                return -1
        return 0

    cdef int _revise_bucket(self, Py_ssize_t k, i64 t, f64 o, f64 h, f64 l, f64 c, f64 v,
                            bint in_order, bint record) noexcept nogil:
        """Make derived interval k's bucket holding t again from the bars that feed it: a
        closed bar is replaced (or, for a bucket that was empty, inserted), the bar being
        built is recomputed, a bucket not begun is left to the feed."""
        cdef Rollup* r = &self.rollups[k]
        cdef BarStore* out = &self.derived[k]
        cdef BarStore* src
        cdef GridCursor probe
        cdef Py_ssize_t p = self.parent[k], lo, hi, i, j, w
        cdef i64 bs, be, expected, cnt
        cdef f64 ho, hh, hl, hc, hv
        cdef bint passed, active, left, right
        cdef int rc = 0
        cdef BarRow old
        cdef BarRow* q
        cdef Revision* rv
        probe.window = 0
        probe.slot_start = NO_BAR
        probe.slot_end = NO_BAR
        if not grid_locate(&probe, r.g_open, r.g_close, r.n_windows, r.step_ns, t):
            return 0    # derived grids cover every window of the session: not reached
        bs = probe.slot_start
        be = probe.slot_end
        w = probe.window
        active = r.bucket.active and bs == r.bucket.start
        passed = (bs < r.bucket.start) if r.bucket.active else (bs < r.closed_until)
        if p >= 0 and not passed and not active and be <= self.last_ns:
            # Not begun, yet ended before the last bar: in order it would be closed by now.
            passed = True
        if p < 0 and in_order and not passed:
            # New to this interval: fed exactly as _accept feeds it.
            return self._feed_counted(k, t, o, h, l, c, v, 1)
        src = &self.base if p < 0 else &self.derived[p]
        lo = _search(src, bs)
        hi = _search(src, be)
        if not (passed or active):
            # A coarser bucket not begun: a finer bar that the revision just made (inserted
            # in a finer bucket that had been passed over) is the only one of it, and is later
            # than everything fed so far: fed now, in order.
            if p < 0:
                return 0
            for i in range(lo, hi):
                q = store_row(src, i)
                if self._feed_counted(k, q.ts, q.open, q.high, q.low, q.close, q.volume,
                                      q.count) < 0:
                    return -1
            return 0
        if hi <= lo:
            return 0
        ho = store_row(src, lo).open
        hh = store_row(src, lo).high
        hl = store_row(src, lo).low
        hv = 0.0
        cnt = 0
        for i in range(lo, hi):
            if store_row(src, i).high > hh:
                hh = store_row(src, i).high
            if store_row(src, i).low < hl:
                hl = store_row(src, i).low
            hv += store_row(src, i).volume
            cnt += store_row(src, i).count if p >= 0 else 1
        hc = store_row(src, hi - 1).close
        if active:
            r.bucket.open = ho
            r.bucket.high = hh
            r.bucket.low = hl
            r.bucket.close = hc
            r.bucket.volume = hv
            r.bucket.count = cnt
            return 0
        expected = r.g_base_slots[w] if r.step_ns <= 0 else bucket_slots(bs, be, r.base_ns)
        j = _search(out, bs)
        if j < out.n and store_row(out, j).ts == bs:
            old = _row(out, j)
            store_set(out, j, bs, ho, hh, hl, hc, hv, cnt, <f64> cnt / <f64> expected)
            if record and not _same(old, _row(out, j)) and self.n_revs < MAX_REVS:
                rv = &self.revs[self.n_revs]
                self.n_revs += 1
                rv.k = k
                rv.had_old = True
                rv.old = old
                rv.new = _row(out, j)
            return 0
        # The bucket was empty (a gap of this interval): a bar for it now.
        if _store_insert(out, j, bs, ho, hh, hl, hc, hv, cnt, <f64> cnt / <f64> expected) != 0:
            return -1
        if self.derived_gaps and bs < self.dseen[k].next_slot:
            # A gap of this interval told before (gap events by interval): told again.
            self.drg_on[k] = True
            self.drg_t[k] = bs
            self.drg_t_end[k] = be
            self.drg_s[k] = r.g_open[w]
            if j > 0 and store_row(out, j - 1).ts >= r.g_open[w]:
                self.drg_s[k] = _grid_end(r.g_open, r.g_close, r.n_windows, r.step_ns,
                                          store_row(out, j - 1).ts)
            self.drg_e[k] = r.g_close[w]
            if j + 1 < out.n and store_row(out, j + 1).ts < self.drg_e[k]:
                self.drg_e[k] = store_row(out, j + 1).ts
        if j < self.emitted[k]:
            self.emitted[k] += 1
        if not r.bucket.active and be > r.closed_until:
            r.closed_until = be
        if bs < r.gaps.next_slot:
            r.gaps.present += 1
            r.gaps.missing -= 1
            left = bs == r.g_open[w] or (j > 0 and store_row(out, j - 1).ts == bs - r.step_ns)
            right = be == r.g_close[w] or (j + 1 < out.n and store_row(out, j + 1).ts == be)
            if left and right:
                r.gaps.runs -= 1
            elif not left and not right:
                r.gaps.runs += 1
        else:
            # Beyond what the walker accounted for: step it over the bucket now.
            walker_step_to(&r.gaps, r.g_open, r.g_close, r.n_windows, r.step_ns, bs,
                           NULL, NULL, 0, 0, &rc)
        if record and self.n_revs < MAX_REVS:
            rv = &self.revs[self.n_revs]
            self.n_revs += 1
            rv.k = k
            rv.had_old = False
            rv.new = _row(out, j)
        return 0

    # -- events -------------------------------------------------------------------------------

    def want_derived_gaps(self, bint on):
        """Make (or stop making) the gap events of the derived intervals; they start from
        what is held now."""
        cdef Py_ssize_t k
        if on and not self.derived_gaps:
            for k in range(self.n_derived):
                self.dseen[k] = self.rollups[k].gaps
                self.drg_on[k] = False
        self.derived_gaps = on

    def sync_events(self):
        """Take everything held as reported: events start from here."""
        cdef Py_ssize_t k
        self.seen = self.gaps
        self.seen_n = self.base.n
        for k in range(MAX_DERIVED):
            self.emitted[k] = self.derived[k].n if k < self.n_derived else 0
            if k < self.n_derived:
                self.dseen[k] = self.rollups[k].gaps
            self.drg_on[k] = False
        self.ann_until = NO_BAR
        self.ann_final = False
        self.stale_sent = False
        self.rg_on = False
        self.n_revs = 0

    @property
    def names(self):
        """The interval names the events carry: the base, then derived 0, 1, ... (a tuple:
        set a new sequence to change them)."""
        return self._names

    @names.setter
    def names(self, value):
        cdef tuple names = tuple(value)
        cdef Py_ssize_t i
        if len(names) > MAX_DERIVED + 1:
            raise ValueError(f"at most {MAX_DERIVED + 1} interval names, got {len(names)}")
        for i in range(len(names)):
            if not isinstance(names[i], str):
                raise TypeError(f"interval names are strings, got {type(names[i]).__name__}")
        # Interned: one object per name for every stream, which each event takes a reference
        # to (a string of its own per stream was a cache miss on most bar_closed events).
        names = tuple([sys.intern(str(name)) for name in names])
        self._names = names             # (owns what name_at borrows)
        for i in range(len(names)):
            self.name_at[i] = <PyObject*> names[i]
        self.n_names = len(names)

    cdef inline object _name(self, Py_ssize_t k):
        """The name of interval k (-1: the base), or k when the names were not set."""
        if k + 1 < self.n_names:
            return <object> self.name_at[k + 1]
        return k

    cdef i64 _window_close(self, i64 start) noexcept nogil:
        """The close of the window holding the base slot start (start itself outside)."""
        cdef GridCursor g
        g.window = 0
        g.slot_start = NO_BAR
        g.slot_end = NO_BAR
        if not grid_locate(&g, self.w_open, self.w_close, self.n_windows, self.base_ns, start):
            return start
        return self.w_close[g.window]

    cdef i64 _run_end(self, i64 start, i64 count) noexcept nogil:
        """The exclusive end of a run of count missing base slots from start, as the batch
        says it (find_gaps): start + count * base, past the close when the window's last
        slot is short."""
        return run_end(start, count, self.base_ns)

    cdef inline bint _told_closed(self, i64 start, i64 end) noexcept nogil:
        """Whether the announced run [start, end) was told closed (gap_closed) by a scan."""
        cdef i64 close
        if self.ann_final:
            return True
        close = self._window_close(start)
        return end >= close and close <= self.ann_until

    cdef inline void _gap(self, list out, int code, object symbol, object name, i64 start,
                          i64 end, i64 count):
        out.append(_event(code, symbol, name, start, end, count))

    cdef i64 _next_due(self, i64 until, i64 grace) noexcept nogil:
        """The clock at which the next base slot after ``until`` (slots that ended by then
        were scanned) is ``grace`` slots past its end: when a scan has news of this stream."""
        cdef GridCursor g
        cdef i64 e
        g.window = 0
        g.slot_start = NO_BAR
        g.slot_end = NO_BAR
        if grid_locate(&g, self.w_open, self.w_close, self.n_windows, self.base_ns, until):
            e = g.slot_end
        elif g.window < self.n_windows:
            e = step_end(self.w_open[g.window], self.base_ns, self.w_close[g.window])
        else:
            return INT64_MAX
        if grace <= 0:
            return e
        if self.base_ns > INT64_MAX // grace:
            return INT64_MAX
        return add_sat(e, self.base_ns * grace)

    cdef inline void _take_closed(self) noexcept:
        """What ``collect`` does when only derived bars closed and no bar_closed is wanted
        (no derived gap events either): the walker follows, the bars count as reported."""
        cdef Py_ssize_t k
        _follow(&self.seen, &self.gaps)
        self.seen_n = self.base.n
        self.stale_sent = False
        for k in range(self.n_derived):
            self.emitted[k] = self.derived[k].n

    cpdef int collect(self, object symbol, list out, int wanted=0x1f) except -1:
        """Append to ``out`` the events since the last collect: gaps that the bars ended
        (``gap_opened`` first for a gap no scan announced; ``gap_revised`` for an announced
        one that a bar showed to be otherwise), revisions, derived bars closed.
        ``wanted``: a bit mask of the kinds to make (1 << Event.code); the others are only
        taken as reported.  Returns how many."""
        cdef Py_ssize_t i, j, k, a, nr, na, m0 = len(out)
        cdef GapWalker w, tmp
        cdef i64 rs[RUN_CAP]
        cdef i64 rn[RUN_CAP]
        cdef i64 as_[RUN_CAP]
        cdef i64 an[RUN_CAP]
        cdef i64 t, end, a_end
        cdef int fault = 0
        cdef BarStore* s
        cdef Event ev
        cdef Revision* rv
        cdef BarRow* q
        cdef object name
        if self.seen_n != self.base.n and self.gaps.runs == self.seen.runs \
                and self.ann_until == NO_BAR:
            # No gap ended and none is announced: nothing to tell, the walker just follows.
            self.seen = self.gaps
            self.seen_n = self.base.n
            self.stale_sent = False
        if self.seen_n != self.base.n:
            w = self.seen
            name = self._name(-1)
            for i in range(self.seen_n, self.base.n):
                t = store_row(&self.base, i).ts
                # The runs the clock announced ahead of the bars, as they were told.
                na = 0
                if self.ann_until != NO_BAR:
                    if self.ann_until > w.next_slot:
                        na = walker_finish(w, self.w_open, self.w_close, self.n_windows,
                                           self.base_ns, self.ann_until, as_, an, 0, RUN_CAP,
                                           &tmp)
                        if na > RUN_CAP:
                            na = RUN_CAP
                    else:
                        self.ann_until = NO_BAR
                        self.ann_final = False
                nr = walker_step_to(&w, self.w_open, self.w_close, self.n_windows, self.base_ns,
                                    t, rs, rn, 0, RUN_CAP, &fault)
                if nr > RUN_CAP:
                    nr = RUN_CAP
                a = 0
                for j in range(nr):
                    end = self._run_end(rs[j], rn[j])
                    while a < na and as_[a] < rs[j]:     # (not reached: runs start alike)
                        self._gap(out, EV_GAP_REVISED, symbol, name, as_[a],
                                  self._run_end(as_[a], an[a]), an[a])
                        a += 1
                    if a < na and as_[a] == rs[j]:
                        a_end = self._run_end(as_[a], an[a])
                        if not self._told_closed(as_[a], a_end):
                            # Opened by the clock, ended by this bar: its final range.
                            self._gap(out, EV_GAP_CLOSED, symbol, name, rs[j], end, rn[j])
                        elif a_end != end:
                            # Told closed at its window's close, yet a bar of the window
                            # came (a symbol lagging past the grace): told again.
                            self._gap(out, EV_GAP_REVISED, symbol, name, as_[a], a_end, an[a])
                            self._gap(out, EV_GAP_OPENED, symbol, name, rs[j], end, rn[j])
                            self._gap(out, EV_GAP_CLOSED, symbol, name, rs[j], end, rn[j])
                        a += 1
                    else:
                        self._gap(out, EV_GAP_OPENED, symbol, name, rs[j], end, rn[j])
                        self._gap(out, EV_GAP_CLOSED, symbol, name, rs[j], end, rn[j])
                while a < na:
                    # Announced, yet this bar is in it or before it: its slots are withdrawn
                    # (the clock announces what is still missing on its next scan).
                    self._gap(out, EV_GAP_REVISED, symbol, name, as_[a],
                              self._run_end(as_[a], an[a]), an[a])
                    a += 1
                if na:
                    self.ann_until = NO_BAR
                    self.ann_final = False
            self.stale_sent = False
            self.seen = w
            self.seen_n = self.base.n
        if self.rg_on:
            # An out-of-order bar filled a slot of a gap told before: the gap as told is
            # revised, and what remains of it (0, 1 or 2 runs) is told anew.
            self.rg_on = False
            name = self._name(-1)
            self._gap(out, EV_GAP_REVISED, symbol, name, self.rg_s,
                      self._run_end(self.rg_s, self.rg_n), self.rg_n)
            if self.rg_s < self.rg_t:
                k = <i64> slots_from(self.rg_s, self.rg_t, self.base_ns)
                end = self._run_end(self.rg_s, k)
                self._gap(out, EV_GAP_OPENED, symbol, name, self.rg_s, end, k)
                self._gap(out, EV_GAP_CLOSED, symbol, name, self.rg_s, end, k)
            if self.rg_t_end < self.rg_e:
                k = <i64> slots_from(self.rg_t_end, self.rg_e, self.base_ns)
                end = self._run_end(self.rg_t_end, k)
                self._gap(out, EV_GAP_OPENED, symbol, name, self.rg_t_end, end, k)
                self._gap(out, EV_GAP_CLOSED, symbol, name, self.rg_t_end, end, k)
        if self.n_revs:
            j = self.n_revs
            self.n_revs = 0     # taken before any object is made (which may run the GC)
            for i in range(j):
                rv = &self.revs[i]
                ev = _event(EV_REVISED, symbol, self._name(rv.k), rv.new.ts, NO_BAR, 0)
                ev._more = (_bar_dict(rv.old) if rv.had_old else None, _bar_dict(rv.new))
                out.append(ev)
        for k in range(self.n_derived):
            s = &self.derived[k]
            if self.derived_gaps:
                self._collect_derived_gaps(k, symbol, out)
            if self.emitted[k] < s.n and wanted & (1 << EV_BAR_CLOSED):
                name = self._name(k)
                for i in range(self.emitted[k], s.n):
                    out.append(_bar_closed(symbol, name, store_row(s, i)))
            self.emitted[k] = s.n
        return len(out) - m0

    cdef inline void _dgap(self, list out, int code, object symbol, object name, i64 start,
                           i64 end, i64 count):
        cdef Event ev = _event(code, symbol, name, start, end, count)
        ev.derived = True
        out.append(ev)

    cdef int _dgap_pair(self, Py_ssize_t k, list out, object symbol, object name, i64 start,
                        i64 end) except -1:
        """gap_opened and gap_closed of the run [start, end) of derived interval k."""
        cdef Rollup* r = &self.rollups[k]
        cdef i64 n = <i64> slots_from(start, end, r.step_ns)
        end = _grid_run_end(r.g_open, r.g_close, r.n_windows, r.step_ns, start, n)
        self._dgap(out, EV_GAP_OPENED, symbol, name, start, end, n)
        self._dgap(out, EV_GAP_CLOSED, symbol, name, start, end, n)
        return 0

    cdef int _collect_derived_gaps(self, Py_ssize_t k, object symbol, list out) except -1:
        """The gap events of derived interval k since the last collect: its runs of empty
        buckets that a closed bar ended, and a told run that a revision filled."""
        cdef BarStore* s = &self.derived[k]
        cdef Rollup* r = &self.rollups[k]
        cdef GapWalker w = self.dseen[k]
        cdef i64 rs[RUN_CAP]
        cdef i64 rn[RUN_CAP]
        cdef Py_ssize_t i, j, nr
        cdef i64 n
        cdef int fault = 0
        cdef object name = self._name(k)
        if self.drg_on[k]:
            self.drg_on[k] = False
            n = <i64> slots_from(self.drg_s[k], self.drg_e[k], r.step_ns)
            self._dgap(out, EV_GAP_REVISED, symbol, name, self.drg_s[k], _grid_run_end(
                r.g_open, r.g_close, r.n_windows, r.step_ns, self.drg_s[k], n), n)
            if self.drg_s[k] < self.drg_t[k]:
                self._dgap_pair(k, out, symbol, name, self.drg_s[k], self.drg_t[k])
            if self.drg_t_end[k] < self.drg_e[k]:
                self._dgap_pair(k, out, symbol, name, self.drg_t_end[k], self.drg_e[k])
        for i in range(self.emitted[k], s.n):
            if store_row(s, i).ts < w.next_slot:
                continue        # a bar a revision put behind what was told (told above)
            nr = walker_step_to(&w, r.g_open, r.g_close, r.n_windows, r.step_ns, store_row(s, i).ts,
                                rs, rn, 0, RUN_CAP, &fault)
            for j in range(nr if nr < RUN_CAP else RUN_CAP):
                self._dgap_pair(k, out, symbol, name, rs[j], _grid_run_end(
                    r.g_open, r.g_close, r.n_windows, r.step_ns, rs[j], rn[j]))
        self.dseen[k] = w
        return 0

    cpdef int close_derived_gaps(self, object symbol, list out, i64 until_ns) except -1:
        """The session's end for the gap events of the derived intervals: every run of
        empty buckets that ended by ``until_ns`` and was not told yet is told, opened and
        closed.  Returns how many events."""
        cdef Py_ssize_t k, j, nr, m0 = len(out)
        cdef GapWalker tmp
        cdef i64 rs[RUN_CAP]
        cdef i64 rn[RUN_CAP]
        cdef Rollup* r
        if not self.derived_gaps:
            return 0
        for k in range(self.n_derived):
            self._collect_derived_gaps(k, symbol, out)
            r = &self.rollups[k]
            nr = walker_finish(self.dseen[k], r.g_open, r.g_close, r.n_windows, r.step_ns,
                               until_ns, rs, rn, 0, RUN_CAP, &tmp)
            for j in range(nr if nr < RUN_CAP else RUN_CAP):
                self._dgap_pair(k, out, symbol, self._name(k), rs[j], _grid_run_end(
                    r.g_open, r.g_close, r.n_windows, r.step_ns, rs[j], rn[j]))
            self.dseen[k] = tmp
        return len(out) - m0

    cpdef int scan(self, object symbol, list out, i64 until_ns, i64 stale_slots,
                   bint final=False) except -1:
        """Append to ``out`` what the clock says: ``gap_opened`` for each run of slots that
        ended by ``until_ns`` without a bar and was not announced yet, ``gap_closed`` for each
        run that reaches its window's close by then (its range is final), and ``stale`` once
        the symbol has sent nothing for ``stale_slots`` slots (0: never).  With ``final``
        (the session's end) every run is closed at ``until_ns``.  Returns how many."""
        cdef GapWalker tmp, tmp2
        cdef i64 rs[RUN_CAP]
        cdef i64 rn[RUN_CAP]
        cdef i64 os_[RUN_CAP]
        cdef i64 on_[RUN_CAP]
        cdef Py_ssize_t nr, no, j, a, m0 = len(out)
        cdef i64 missing, until, old, end, o_end, first = NO_BAR
        cdef bint closed, last
        cdef object name = None
        old = self.ann_until
        if old != NO_BAR and old <= self.gaps.next_slot:
            old = NO_BAR
        if until_ns <= self.gaps.next_slot and not (final and old != NO_BAR):
            return 0
        if old != NO_BAR and until_ns <= old and (self.ann_final or not final):
            return 0    # told already
        name = self._name(-1)
        while True:
            until = until_ns
            nr = walker_finish(self.gaps, self.w_open, self.w_close, self.n_windows,
                               self.base_ns, until, rs, rn, 0, RUN_CAP, &tmp)
            if nr > RUN_CAP:
                # More runs than one pass tells (a symbol silent over many windows): the
                # first ones, to the close of the window of the last of them, then the rest.
                until = self._window_close(rs[RUN_CAP - 1])
                nr = walker_finish(self.gaps, self.w_open, self.w_close, self.n_windows,
                                   self.base_ns, until, rs, rn, 0, RUN_CAP, &tmp)
                if nr > RUN_CAP:
                    nr = RUN_CAP
            last = until >= until_ns
            if nr and first == NO_BAR:
                first = rs[0]
            old = self.ann_until
            no = 0
            if old != NO_BAR and old > self.gaps.next_slot:
                no = walker_finish(self.gaps, self.w_open, self.w_close, self.n_windows,
                                   self.base_ns, old, os_, on_, 0, RUN_CAP, &tmp2)
                if no > RUN_CAP:
                    no = RUN_CAP
            a = 0
            for j in range(nr):
                end = self._run_end(rs[j], rn[j])
                o_end = self._window_close(rs[j])
                closed = (final and last) or (end >= o_end and o_end <= until)
                while a < no and os_[a] < rs[j]:    # (not reached: runs start alike)
                    self._gap(out, EV_GAP_REVISED, symbol, name, os_[a],
                              self._run_end(os_[a], on_[a]), on_[a])
                    a += 1
                if a < no and os_[a] == rs[j]:
                    o_end = self._run_end(os_[a], on_[a])
                    a += 1
                    if self._told_closed(os_[a - 1], o_end):
                        continue
                    if closed:
                        self._gap(out, EV_GAP_CLOSED, symbol, name, rs[j], end, rn[j])
                    continue
                self._gap(out, EV_GAP_OPENED, symbol, name, rs[j], end, rn[j])
                if closed:
                    self._gap(out, EV_GAP_CLOSED, symbol, name, rs[j], end, rn[j])
            while a < no:
                # Told, but past a final until that came earlier than the clock: withdrawn.
                self._gap(out, EV_GAP_REVISED, symbol, name, os_[a],
                          self._run_end(os_[a], on_[a]), on_[a])
                a += 1
            self.ann_until = until
            self.ann_final = final and last
            if last:
                break
        missing = tmp.missing - self.gaps.missing
        if stale_slots > 0 and missing >= stale_slots and not self.stale_sent and not final:
            out.append(_event(EV_STALE, symbol, name, first, until_ns, missing))
            self.stale_sent = True
        return len(out) - m0

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
        """Close every derived bar being built (the end of the session); returns how many.
        The stores give back the rows no bar uses (a shrinking realloc: nothing is copied
        where the allocator can shrink in place; a failure to shrink keeps them as they were).
        """
        cdef int closed = self._close(0, True)
        self._trim()
        return closed

    cdef int _close(self, i64 now_ns, bint everything) except -1:
        cdef int closed = self._close_ended(now_ns, everything, False)
        self._bounds()
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

    cdef BarStore* _store(self, Py_ssize_t k) except NULL:
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

    @property
    def pooled(self):
        """Whether the base store's rows are in the huge-page pool (a dense stream's, sized
        for its session; never with ``SESSIONDATA_HUGEPAGES=0`` nor off Linux)."""
        return bool(self.base.pooled)


@cython.auto_pickle(False)
cdef class SymbolCore:
    """The compiled base of ``SymbolSessionData``: its stream in a C field, so that the
    registry's per-bar path and its scans reach it without an attribute lookup."""
    cdef public object _stream


cdef class SessionCore:
    """The compiled base of ``SessionData``: the registry dict and the per-bar fast path.

    ``add_bar`` looks the symbol up and pushes the bar into its stream without releasing the
    GIL and without running any Python code in between, so under the GIL it is atomic with
    respect to every other registry operation (all of which hold the GIL too).  A stream busy
    with a batch (which runs without the GIL, under the registry lock) sends the bar to
    ``_add_bar_waiting``, which the Python class implements by taking that lock.
    """
    cdef dict _reg                   # the registry: ``_symbols`` (see the property)
    # A cache of the registry's lookups on the per-bar path, keyed by the identity of the
    # symbol string the caller passes (the same objects come again and again from a feed's
    # symbol table): a hit is one probe of this table, without hashing, comparing strings,
    # or reading the entry (each a cache miss with hundreds of symbols interleaved).  It
    # holds no record of its own: it is emptied whenever the registry changes (``_symbols``
    # set, ``_pop_symbol``), and only ever answers what the registry would.
    cdef CacheSlot* _cache           # 64-byte aligned inside _cache_block: a slot per line
    cdef void* _cache_block
    cdef Py_ssize_t _cache_size      # slots (a power of two), 0: none yet
    cdef Py_ssize_t _last_slot       # the slot of the last bar's symbol, -1: none
    cdef Py_ssize_t _cache_fill
    cdef int _cache_shift
    cdef public dict _unknown_bars   # symbol -> bars offered for a symbol not registered
    cdef public i64 _clock           # latest bar end seen, or a later time set by advance
    cdef public bint _raise_on_bad
    cdef public bint _revise         # late, unsorted and duplicated bars revise (on_bad)
    # Events: with no subscriber (``_events_on`` False) the bar path does nothing more.
    cdef public bint _events_on
    cdef public list _pending        # events collected, not yet delivered
    cdef public list _subscribers    # [(callback, kinds bit mask, re-raise errors)]
    cdef bint _delivering            # a delivery loop runs (checked and set under the GIL)
    cdef list _spare                 # the list _pending is swapped with while delivering
    cdef Subscriber* _subs_tab       # _subscribers as the delivery loop reads them (_subs_build)
    # The registry's streams in a C array for the clock's scan (_scan_build): a scan then
    # reads each stream's two lines, not a dict entry and an entry object first (with
    # hundreds of symbols all are cache misses, once a slot).  Emptied whenever the
    # registry changes (``_symbols`` set, ``_put_symbol``, ``_pop_symbol``).
    cdef ScanEntry* _scan_tab
    cdef Py_ssize_t _scan_n
    cdef bint _scan_valid
    # A bit per row of the table: the stream was counted current for the coming scan (the
    # bar path sets it where it counts ``_current``).  A scan at the time it was due, after
    # no change of the registry, looks only at the streams whose bit is clear.
    cdef u64* _scan_bits
    cdef i64 _scan_min_base          # the table's smallest base interval
    cdef Py_ssize_t _subs_n
    cdef object _subs_of             # the list _subs_tab was made from
    cdef public int _defer           # > 0 while a caller holds the registry lock
    cdef public i64 _next_scan       # the clock at which the streams are scanned next
    cdef public int _wanted          # the kinds some subscriber wants (1 << Event.code)
    # A bar whose only news is closed derived bars hands them to the callbacks at once
    # (_deliver_closed); False: through collect and the pending list, as every other news
    # (the same events in the same order: the tests compare the two).
    cdef public bint _direct
    # Streams known to be current for that scan (a bar took them to its slot); negative after
    # the registry changed.  When all are, the scan has nothing to look at.
    cdef public Py_ssize_t _current
    cdef i64 _scan_step
    cdef public i64 _stale_slots
    cdef public i64 _grace_slots

    def __cinit__(self):
        self._reg = {}
        self._cache = NULL
        self._cache_block = NULL
        self._cache_size = 0
        self._last_slot = -1
        self._cache_fill = 0
        self._unknown_bars = {}
        self._clock = NO_BAR
        self._raise_on_bad = True
        self._revise = False
        self._events_on = False
        self._pending = []
        self._spare = []
        self._subscribers = []
        self._defer = 0
        self._next_scan = NO_BAR
        self._wanted = 0
        self._direct = True
        self._current = -1
        self._scan_step = 1
        self._stale_slots = 5
        self._grace_slots = 1

    def __dealloc__(self):
        self._cache_clear()
        free(self._cache_block)
        self._subs_clear()
        self._scan_clear()

    @property
    def _symbols(self):
        """The registry: symbol -> ``SymbolSessionData``.  Setting it (a new session) empties
        the lookup cache first."""
        return self._reg

    @_symbols.setter
    def _symbols(self, dict value not None):
        self._cache_clear()     # first: nothing below can find a stream of the old registry
        self._scan_clear()
        self._reg = value

    def _pop_symbol(self, symbol):
        """Remove ``symbol`` from the registry (and the lookup cache, in the same step: no
        other thread can come in between); its entry, or None."""
        self._cache_clear()
        self._scan_clear()
        return self._reg.pop(symbol, None)

    def _put_symbol(self, symbol, entry):
        """Add ``symbol`` -> ``entry`` (a ``SymbolCore`` holding its stream) to the registry:
        the one way a symbol comes in, so that the scan's table follows."""
        self._scan_clear()
        self._reg[symbol] = entry

    cdef void _scan_clear(self) noexcept:
        cdef Py_ssize_t i, n = self._scan_n
        cdef ScanEntry* tab = self._scan_tab
        self._scan_tab = NULL
        self._scan_n = 0
        self._scan_valid = False
        free(self._scan_bits)
        self._scan_bits = NULL
        for i in range(n):
            Py_XDECREF(tab[i].key)
            Py_XDECREF(tab[i].stream)
        free(tab)

    cdef int _scan_build(self) except -1:
        """The registry's (key, stream) pairs in its order, for _scan_all_c."""
        cdef dict symbols = self._reg
        cdef Py_ssize_t pos = 0, i = 0, n = len(symbols)
        cdef PyObject* key
        cdef PyObject* value
        cdef ScanEntry* tab
        cdef object s
        self._scan_clear()
        tab = <ScanEntry*> calloc(n if n > 0 else 1, sizeof(ScanEntry))
        if tab == NULL:
            raise MemoryError()
        self._scan_tab = tab
        self._scan_bits = <u64*> calloc((n + 63) // 64 + 1, sizeof(u64))
        if self._scan_bits == NULL:
            raise MemoryError()
        self._scan_min_base = INT64_MAX
        while PyDict_Next(symbols, &pos, &key, &value):
            s = <SymbolStream?> (<SymbolCore?> <object> value)._stream
            Py_INCREF(<object> key)
            Py_INCREF(s)
            tab[i].key = key
            tab[i].stream = <PyObject*> s
            tab[i].base_ns = (<SymbolStream> s).base_ns
            (<SymbolStream> s).scan_idx = i
            if tab[i].base_ns < self._scan_min_base:
                self._scan_min_base = tab[i].base_ns
            i += 1
            self._scan_n = i
        self._scan_valid = True
        return 0

    cdef void _cache_clear(self) noexcept:
        cdef Py_ssize_t i
        cdef PyObject* k
        cdef PyObject* v
        self._last_slot = -1
        if self._cache_fill == 0:
            return
        self._cache_fill = 0
        for i in range(self._cache_size):
            # Slots emptied before the references go: a str or stream freed here runs no
            # Python code, yet the table is consistent whatever happens.
            k = self._cache[i].key
            v = self._cache[i].stream
            self._cache[i].key = NULL
            self._cache[i].stream = NULL
            Py_XDECREF(k)
            Py_XDECREF(v)

    cdef inline Py_ssize_t _cache_slot(self, PyObject* key) noexcept:
        # Fibonacci hashing of the address (objects are 16-byte aligned).
        return <Py_ssize_t> ((((<size_t> key) >> 4) * <size_t> 0x9E3779B97F4A7C15ULL)
                             >> self._cache_shift)

    cdef inline Py_ssize_t _cache_find(self, object symbol) noexcept:
        """The slot caching this very string object, or -1."""
        cdef Py_ssize_t i, m
        cdef PyObject* key = <PyObject*> symbol
        if self._cache_size == 0:
            return -1
        m = self._cache_size - 1
        i = self._cache_slot(key)
        while self._cache[i].key != NULL:       # linear probing; never more than half full
            if self._cache[i].key == key:
                return i
            i = (i + 1) & m
        return -1

    cdef int _cache_put(self, object symbol, object stream) except -1:
        """Remember symbol (an exact str) -> stream.  A full table (half its slots: feeds
        that make a new string object per bar) is emptied and sized for the registry."""
        cdef Py_ssize_t i, m, size
        cdef int bits
        cdef void* block
        if 2 * (self._cache_fill + 1) > self._cache_size:
            self._cache_clear()
            size = 64
            bits = 6
            while size < 4 * len(self._reg):
                size <<= 1
                bits += 1
            if size != self._cache_size:
                block = calloc(size + 1, sizeof(CacheSlot))
                if block == NULL:
                    return 0        # no cache: the registry answers
                free(self._cache_block)
                self._cache_block = block
                self._cache = <CacheSlot*> (<char*> block + ((0 - <size_t> block) & 63))
                self._cache_size = size
                self._cache_shift = 64 - bits
        m = self._cache_size - 1
        i = self._cache_slot(<PyObject*> symbol)
        while self._cache[i].key != NULL:
            i = (i + 1) & m
        Py_INCREF(symbol)
        Py_INCREF(stream)
        self._cache[i].key = <PyObject*> symbol
        self._cache[i].stream = <PyObject*> stream
        self._cache_fill += 1
        return 0

    cdef int _convert(self, symbol, object ts, object open, object high, object low,
                      object close, object volume, i64* t, f64* out) except -1:
        """The bar's fields as int64 and float64, for what the per-bar path's exact-type
        tests did not take: ints and NumPy integers for ts (never floats), real numbers for
        the prices; an error names the field and the symbol."""
        if type(ts) is int or PyIndex_Check(ts):
            try:
                t[0] = ts
                out[0] = open
                out[1] = high
                out[2] = low
                out[3] = close
                out[4] = volume
            except (TypeError, ValueError, OverflowError):
                bad_value(symbol, ts, open, high, low, close, volume)
                raise
            return 0
        raise TypeError(f"{symbol}: ts must be an integer of nanoseconds, got "
                        f"{type(ts).__name__} {ts!r}")

    def _add_bar_kw(self, symbol, ts, open, high, low, close, volume):
        """``add_bar`` called with keywords (or a wrong number of arguments): its C entry
        passes such calls here, where Cython parses them."""
        return _add_bar_impl(self, symbol, ts, open, high, low, close, volume)

    # -- the declared callbacks ------------------------------------------------------------
    # The policy this class leaves to Python (docs/live.md, "The registry and its kernels"):
    # a subclass (``SessionData``) defines these four; the compiled per-bar path calls them
    # only off its fast path.

    def _add_bar_waiting(self, symbol, ts, open, high, low, close, volume):
        """Callback: the symbol's stream is busy with a batch (which holds the registry lock
        and runs without the GIL): wait for it, then offer the bar; returns what ``add_bar``
        returns."""
        raise NotImplementedError("SessionCore._add_bar_waiting: defined by SessionData")

    def _bad_bar(self, symbol, int fault, ts, open, high, low, close, volume):
        """Callback: the raise policy refused a bar with ``fault`` (a ``Fault`` code); raise
        the error that says so (it must raise)."""
        raise NotImplementedError("SessionCore._bad_bar: defined by SessionData")

    def _event_failed(self, event, sub, exc):
        """Callback: a subscriber's callback raised ``exc`` on ``event``; record it, and
        return True when it is to be re-raised once every pending event is delivered."""
        raise NotImplementedError("SessionCore._event_failed: defined by SessionData")

    def _gap_info(self, event):
        """Callback: the ``GapInfo`` of a gap event (in the calendar's zone), made the first
        time ``event.gap`` is read."""
        raise NotImplementedError("SessionCore._gap_info: defined by SessionData")

    def _note_clock(self, i64 end_ns):
        if end_ns > self._clock:
            self._clock = end_ns

    # -- events ---------------------------------------------------------------------------

    def _scan_all(self, i64 now_ns):
        """Scan every stream whose next expected slot ended ``_grace_slots`` slots before
        ``now_ns`` (gap_opened, stale); the events go to ``_pending``."""
        self._scan_all_c(now_ns)

    cdef int _scan_all_c(self, i64 now_ns) except -1:
        cdef SymbolStream s
        cdef i64 step = INT64_MAX, until, nxt = INT64_MAX, due_base = 0
        cdef list due = None
        cdef dict symbols = self._reg
        cdef Py_ssize_t i, n
        cdef i64 base_ns
        cdef ScanEntry* tab
        if now_ns == self._next_scan and self._current >= len(symbols):
            # Every stream's bars reached the slots this scan looks at (the steady state of
            # a feed): nothing ended without a bar.
            self._next_scan = add_sat(now_ns, self._scan_step)
            self._current = 0
            self._scan_bits_clear()
            return 0
        if (now_ns == self._next_scan and self._current >= 0 and self._scan_valid
                and self._scan_n == len(symbols)):
            # Due at its time, the registry unchanged since the last scan: the streams
            # counted current need no look (a few symbols that missed the slot, not all).
            return self._scan_uncounted(now_ns)
        if not self._scan_valid or self._scan_n != len(symbols):
            self._scan_build()
        tab = self._scan_tab
        n = self._scan_n
        # Only reads here (no allocation, no Python code): the registry cannot change under
        # this loop.  The streams that have something to say are scanned after it.
        for i in range(n):
            if i + SCAN_AHEAD < n:
                # The line of a stream the loop reads, fetched a few streams ahead.
                sd_prefetch(<const char*> &(<SymbolStream> tab[i + SCAN_AHEAD].stream).gaps)
            base_ns = tab[i].base_ns
            if base_ns < step:
                step = base_ns
            until = _grace_until(now_ns, base_ns, self._grace_slots)
            # (read through the pointer: no reference taken, so the object's first line,
            # its reference count, is not written on every stream)
            if until > (<SymbolStream> tab[i].stream).gaps.next_slot:
                if due is None:
                    due = []
                due.append((<object> tab[i].key, <object> tab[i].stream, until))
            # The next scan comes when the next slot of some stream is due, wherever now
            # lies (a wall clock given to advance is never on a slot boundary).  The streams
            # of a session share its windows: once per base interval is enough.
            if base_ns != due_base:
                due_base = base_ns
                s = <SymbolStream> tab[i].stream
                until = s._next_due(until, self._grace_slots)
                if until < nxt:
                    nxt = until
        if due is not None:
            for symbol, s, until in due:
                s.scan(symbol, self._pending, until, self._stale_slots)
        self._scan_step = step if step != INT64_MAX else 1
        self._next_scan = nxt if nxt > now_ns else add_sat(now_ns, 1)
        self._current = 0
        self._scan_bits_clear()
        return 0

    cdef inline void _scan_bits_clear(self) noexcept:
        if self._scan_bits != NULL:
            memset(self._scan_bits, 0, ((self._scan_n + 63) // 64) * sizeof(u64))

    cdef int _scan_uncounted(self, i64 now_ns) except -1:
        """_scan_all_c for the streams whose bit is clear (see _scan_bits), in the table's
        order; the same events, the same next scan."""
        cdef ScanEntry* tab = self._scan_tab
        cdef u64* bits = self._scan_bits
        cdef Py_ssize_t n = self._scan_n, w, i
        cdef u64 word
        cdef i64 until, nxt = INT64_MAX, due_base = 0, base_ns
        cdef list due = None
        cdef SymbolStream s
        for w in range((n + 63) // 64):
            word = ~bits[w]
            if w == n // 64:
                word &= ((<u64> 1) << (n % 64)) - 1     # (the rows past the last one)
            while word:
                i = w * 64 + sd_ctz(word)
                word &= word - 1
                base_ns = tab[i].base_ns
                until = _grace_until(now_ns, base_ns, self._grace_slots)
                if until > (<SymbolStream> tab[i].stream).gaps.next_slot:
                    if due is None:
                        due = []
                    due.append((<object> tab[i].key, <object> tab[i].stream, until))
        # The next scan: as the full loop finds it (from the table only, but one stream a
        # run of one base interval).
        for i in range(n):
            base_ns = tab[i].base_ns
            if base_ns != due_base:
                due_base = base_ns
                s = <SymbolStream> tab[i].stream
                until = s._next_due(_grace_until(now_ns, base_ns, self._grace_slots),
                                    self._grace_slots)
                if until < nxt:
                    nxt = until
        if due is not None:
            for symbol, s, until in due:
                s.scan(symbol, self._pending, until, self._stale_slots)
        self._scan_step = self._scan_min_base if self._scan_min_base != INT64_MAX else 1
        self._next_scan = nxt if nxt > now_ns else add_sat(now_ns, 1)
        self._current = 0
        self._scan_bits_clear()
        return 0

    def _deliver(self):
        """Hand the pending events, in order, to the subscribers whose kinds match.

        Runs outside the registry lock.  One loop delivers at a time (a callback that adds a
        bar has its events delivered by the loop that called it, after it returns; so do
        other threads' events while it runs); an exception of a callback is passed to
        ``_event_failed`` and the remaining events are still delivered; one to re-raise is
        raised at the end, when every event is out."""
        self._deliver_c()

    cdef object _callback_failed(self, Event ev, object sub):
        """A callback raised (its exception is set): an ``Exception`` goes to
        ``_event_failed`` and is returned when it is to be re-raised at the end (else None);
        anything else (KeyboardInterrupt, SystemExit) propagates."""
        try:
            _error_is_set()
        except Exception as exc:
            if self._event_failed(ev, sub, exc):
                return exc
        return None

    cdef int _subs_build(self) except -1:
        """The delivery loop's table of ``_subscribers`` (callable, kinds mask, intervals),
        made again when the list is replaced (it is never changed in place); each row owns
        a reference to its tuple, so that a list changed anyway cannot free what the table
        points to.  Called at the start of a batch only: a batch runs on one table."""
        cdef list subs = self._subscribers
        cdef Py_ssize_t j, m = PyList_GET_SIZE(subs) if subs is not None else 0
        cdef Subscriber* tab
        cdef tuple sub
        cdef object fn, names
        self._subs_clear()
        if m:
            tab = <Subscriber*> calloc(m, sizeof(Subscriber))
            if tab == NULL:
                raise MemoryError()
            self._subs_tab = tab
            for j in range(m):
                sub = <tuple?> PyList_GET_ITEM(subs, j)
                Py_INCREF(sub)
                tab[j].sub = <PyObject*> sub
                self._subs_n = j + 1
                # (borrowed from the tuple, which the row owns)
                fn = sub[0]
                tab[j].fn = <PyObject*> fn
                tab[j].mask = <int> sub[1]
                names = sub[3]
                tab[j].intervals = NULL
                if names is not None:
                    if type(names) is not frozenset:
                        raise TypeError("a subscriber's intervals must be a frozenset")
                    tab[j].intervals = <PyObject*> names
        self._subs_of = subs
        return 0

    cdef void _subs_clear(self) noexcept:
        cdef Py_ssize_t j, m = self._subs_n
        cdef Subscriber* tab = self._subs_tab
        self._subs_tab = NULL
        self._subs_n = 0
        self._subs_of = None
        for j in range(m):
            Py_XDECREF(tab[j].sub)
        free(tab)

    cdef int _deliver_c(self) except -1:
        cdef list batch, subs
        cdef Event ev
        cdef PyObject* args[2]
        cdef Subscriber* tab
        cdef Subscriber* sp
        cdef PyObject* res
        cdef int bit
        cdef Py_ssize_t i, j, n, m
        cdef object failure = None, exc
        # The flag is tested and set with the GIL held and no Python code in between: one
        # loop at a time, and no event left behind (the loop re-reads _pending before it
        # clears the flag, with nothing in between either).
        if self._delivering or self._defer:
            return 0
        args[0] = NULL
        self._delivering = True
        try:
            while self._pending:
                # Two lists swapped, never a new one: no allocation the GC would count.
                batch = self._pending
                self._pending = self._spare
                self._spare = None
                if self._subscribers is not self._subs_of:
                    self._subs_build()
                tab = self._subs_tab
                n = PyList_GET_SIZE(batch)
                m = self._subs_n
                # No try around the calls (its set-up costs on every batch): a callback that
                # raised returns NULL, and _callback_failed takes its exception.
                for i in range(n):
                    ev = <Event> PyList_GET_ITEM(batch, i)     # only events go in
                    bit = 1 << ev.code
                    if ev.code <= EV_GAP_CLOSED or ev.code == EV_GAP_REVISED:
                        if not ev._gap_made:
                            ev._more = self
                    for j in range(m):
                        sp = &tab[j]
                        if sp.mask & bit:
                            if bit & GAP_BITS:
                                # Gap events go by interval: the base's unless the
                                # subscriber named the intervals it wants.
                                if sp.intervals == NULL:
                                    if ev.derived:
                                        continue
                                elif ev.interval not in <frozenset> sp.intervals:
                                    continue
                            args[1] = <PyObject*> ev
                            res = sd_call1(sp.fn, &args[1])
                            if res == NULL:
                                exc = self._callback_failed(ev, <object> sp.sub)
                                if exc is not None and failure is None:
                                    failure = exc
                            else:
                                Py_XDECREF(res)
                ev = None       # (its reference would keep the batch's last event from the pool)
                _empty_list(batch)
                self._spare = batch
        finally:
            if self._spare is None:
                self._spare = []
            self._delivering = False
        if failure is not None:
            raise failure
        return 0


cdef object _add_bar_impl(SessionCore self, object symbol, object ts, object open, object high,
                          object low, object close, object volume):
    """SessionCore.add_bar (its docstring: _ADD_BAR_DOC).  Called from the method's C entry
    (sd_add_bar_entry) with the caller's arguments borrowed: no reference is taken or dropped
    on any of them."""
    cdef object entry, s
    cdef SymbolStream stream
    cdef Py_ssize_t slot
    cdef CacheSlot* cs
    cdef int f
    cdef bint exact
    cdef i64 t
    cdef f64 o, h, l, c, v
    cdef f64 prices[5]
    exact = type(symbol) is str
    if not exact and not isinstance(symbol, str):
        raise TypeError(f"symbol must be a string, got {type(symbol).__name__}")
    if (type(open) is float and type(high) is float and type(low) is float
            and type(close) is float and type(volume) is float and sd_ns_from_int(ts, &t)):
        # The common case (Python ints and floats), read straight from the objects.
        o = PyFloat_AS_DOUBLE(open)
        h = PyFloat_AS_DOUBLE(high)
        l = PyFloat_AS_DOUBLE(low)
        c = PyFloat_AS_DOUBLE(close)
        v = PyFloat_AS_DOUBLE(volume)
    else:
        self._convert(symbol, ts, open, high, low, close, volume, &t, prices)
        o = prices[0]
        h = prices[1]
        l = prices[2]
        c = prices[3]
        v = prices[4]
    slot = self._cache_find(symbol) if exact else -1
    if slot >= 0:
        cs = &self._cache[slot]
        stream = <SymbolStream> cs.stream
        # What the next bar will need, if it is for the symbol that came after this one
        # last time: fetched while this bar and the caller's loop run.
        sd_prefetch(cs.next_key)
        sd_prefetch(cs.next_slot)
        sd_prefetch(cs.next_stream)
        sd_prefetch(cs.next_stream + 64)
        sd_prefetch(cs.next_stream + 128)
        sd_prefetch(cs.next_stream + 192)
        sd_prefetch(cs.next_stream + STREAM_HOT_END - 1)
        sd_prefetch(cs.next_row)
        sd_prefetch(cs.next_row + 47)
        sd_prefetch(cs.next_rollup)
        if self._events_on:
            sd_prefetch(cs.next_stream + 256)
            sd_prefetch(cs.next_stream + 320)
            sd_prefetch(cs.next_stream + STREAM_EVENTS_END - 1)
        if cs.next_close != NULL:
            # Its bar will close a bucket: the derived row, the roll-ups the closed bar
            # cascades into (three intervals' worth), the stores and parents.
            sd_prefetch(cs.next_close)
            sd_prefetch(cs.next_rollup + 64)
            sd_prefetch(cs.next_rollup + 128)
            sd_prefetch(cs.next_rollup + 192)
            sd_prefetch(cs.next_rollup + 256)
            sd_prefetch(cs.next_rollup + 320)
            sd_prefetch(cs.next_rollup + 512)
            sd_prefetch(cs.next_rollup + 576)
            sd_prefetch(cs.next_rollup - ROLLUPS_AT + DERIVED_AT)
            sd_prefetch(cs.next_rollup - ROLLUPS_AT + DERIVED_AT + 64)
            sd_prefetch(cs.next_rollup - ROLLUPS_AT + DERIVED_AT + 128)
            sd_prefetch(cs.next_rollup - ROLLUPS_AT + PARENT_AT)
            if self._events_on:
                sd_prefetch(cs.next_rollup - ROLLUPS_AT + EMITTED_AT)
                sd_prefetch(cs.next_rollup - ROLLUPS_AT + NAMES_AT)
    else:
        entry = self._reg.get(symbol)
        if entry is None:
            self._unknown_bars[symbol] = self._unknown_bars.get(symbol, 0) + 1
            return -1
        s = (<SymbolCore?> entry)._stream
        if type(s) is not SymbolStream:     # (final: an exact type test is the whole test)
            raise TypeError(f"{symbol}: the registry's entry holds no stream")
        stream = <SymbolStream> s
        if exact:
            self._cache_put(symbol, stream)
    if stream.busy:
        return self._add_bar_waiting(symbol, t, o, h, l, c, v)
    f = stream._accept(t, o, h, l, c, v)
    if slot >= 0:
        if self._last_slot >= 0 and self._last_slot != slot:
            cs = &self._cache[self._last_slot]
            cs.next_key = <const char*> <PyObject*> symbol
            cs.next_slot = <const char*> &self._cache[slot]
            cs.next_stream = <const char*> <PyObject*> stream
            cs.next_row = <const char*> store_row(&stream.base, stream.base.n)
            cs.next_rollup = <const char*> stream.rollups
            cs.next_close = NULL
            if (stream.base_fed & 1u and stream.rollups[0].bucket.active
                    and add_sat(stream.last_ns, stream.base_ns)
                    >= stream.rollups[0].bucket.close_at):
                # (the slot after this one: if the next bar is on time, it closes)
                cs.next_close = <const char*> store_row(&stream.derived[0],
                                                        stream.derived[0].n)
        self._last_slot = slot
    if f == FAULT_NONE:
        t = add_sat(t, stream.base_ns)     # the bar's end (saturated at the int64 max)
        if t > self._clock:
            self._clock = t
        if self._events_on:
            _after_bar(self, stream, symbol)
        return 0
    if f == FAULT_OVERFLOW:
        raise MemoryError("no memory left for bars")
    if self._revise and (f == FAULT_UNSORTED or f == FAULT_DUPLICATE or f == FAULT_LATE):
        f = stream._revise_bar(t, o, h, l, c, v, self._events_on)
        if f == FAULT_NONE:
            t = add_sat(t, stream.base_ns)
            if t > self._clock:
                self._clock = t
            if self._events_on:
                _after_bar(self, stream, symbol)
            return 0
    if self._raise_on_bad:
        # Raised, not dropped: the caller hears of it, the quality report does not.
        self._bad_bar(symbol, f, t, o, h, l, c, v)
    stream.rejected[f] += 1
    return f


# SessionCore.add_bar is installed by hand as a METH_FASTCALL | METH_KEYWORDS method (the
# per-bar path's entry): Cython's own wrapper of a ``def`` method copies the 7 arguments into
# an array and takes and drops a reference on each (~80-100 instructions a call); this entry
# hands the caller's array straight to _add_bar_impl, and sends keywords to _add_bar_kw.
cdef bytes _ADD_BAR_DOC = b"""add_bar($self, symbol, ts, open, high, low, close, volume)
--

Offer one base bar of ``symbol``.

Returns 0 when it was stored, -1 when the symbol is not registered (counted in
``unknown_bars``), or, under the ``drop`` policy, the fault code of a dropped bar.
Under the ``raise`` policy a bad bar raises ``BadBarError``.  A value that is no
int64 timestamp or no real number raises TypeError/ValueError naming the field and
the symbol."""

cdef extern from *:
    """
    typedef PyObject* (*sd_add_bar_fn)(PyObject*, PyObject*, PyObject*, PyObject*, PyObject*,
                                       PyObject*, PyObject*, PyObject*);
    typedef PyObject* (*sd_add_bar_kw_fn)(PyObject*, PyObject* const*, Py_ssize_t, PyObject*);
    static sd_add_bar_fn sd_add_bar_impl = NULL;
    static sd_add_bar_kw_fn sd_add_bar_kw = NULL;
    static PyObject* sd_add_bar_entry(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                                      PyObject* kwnames) {
        if (nargs == 7 && kwnames == NULL)
            return sd_add_bar_impl(self, args[0], args[1], args[2], args[3], args[4], args[5],
                                   args[6]);
        return sd_add_bar_kw(self, args, nargs, kwnames);
    }
    static PyMethodDef sd_add_bar_def = {
        "add_bar", (PyCFunction) (void (*)(void)) sd_add_bar_entry,
        METH_FASTCALL | METH_KEYWORDS, NULL};
    /* Install the method in the (static) type's dict, which setattr refuses for such types. */
    static int sd_install_add_bar(PyObject* type, void* impl, void* kw, const char* doc) {
        PyObject* descr;
        int rc;
        sd_add_bar_impl = (sd_add_bar_fn) impl;
        sd_add_bar_kw = (sd_add_bar_kw_fn) kw;
        sd_add_bar_def.ml_doc = doc;
        descr = PyDescr_NewMethod((PyTypeObject*) type, &sd_add_bar_def);
        if (descr == NULL) return -1;
        rc = PyDict_SetItemString(((PyTypeObject*) type)->tp_dict, "add_bar", descr);
        Py_DECREF(descr);
        PyType_Modified((PyTypeObject*) type);
        return rc;
    }
    """
    int sd_install_add_bar(object type, void* impl, void* kw, const char* doc) except -1


cdef object _add_bar_kw(object self, PyObject** args, Py_ssize_t nargs, PyObject* kwnames):
    """add_bar with keywords, or with a wrong number of arguments: Cython's parsing."""
    cdef Py_ssize_t given = nargs + (len(<object> kwnames) if kwnames != NULL else 0)
    if given != 7:
        raise TypeError(f"add_bar() takes 7 arguments (symbol, ts, open, high, low, close, "
                        f"volume), {given} given")
    return _vectorcall(getattr(self, "_add_bar_kw"), args, <size_t> nargs, kwnames)


# The derived bars one bar closes, handed straight to the callbacks (_deliver_closed): at
# most this many (one bar closes at most one bar per interval unless its stream lagged the
# events); more go through collect and the pending list.
cdef enum:
    DIRECT_CAP = 8


cdef Py_ssize_t _after_bar_news(SessionCore self, SymbolStream stream, object symbol,
                                BarRow* rows, int* ks) except -1:
    """The bar has news for the subscribers (a gap ended, a derived bar closed, a revision):
    collect it, or, when only derived bars closed, take them as reported.  Returns how many
    closed bars it copied to ``rows`` (their intervals in ``ks``) for ``_deliver_closed``:
    when they are the bar's only news, bar_closed is wanted, and nothing else is to be
    delivered before them (no event pending, no delivery running, no caller holding the
    registry lock); else 0.  (A scan due with this bar runs before any callback, and what it
    tells goes after these: see ``_after_bar_rest``.)"""
    cdef Py_ssize_t k, i, n = 0
    cdef BarStore* s
    if (stream.last_closed and not stream.derived_gaps and stream.gaps.runs == stream.seen.runs
            and stream.ann_until == NO_BAR and not stream.n_revs
            and stream.seen_n + 1 == stream.base.n):
        if not (self._wanted & (1 << EV_BAR_CLOSED)):
            stream._take_closed()
            return 0
        if (self._direct and not self._defer
                and not self._delivering and self._pending is not None
                and PyList_GET_SIZE(self._pending) == 0):
            # Copied before any callback runs (one may add bars that move the rows), and
            # taken as reported now (a callback's own bars have their own news).
            for k in range(stream.n_derived):
                s = &stream.derived[k]
                for i in range(stream.emitted[k], s.n):
                    if n == DIRECT_CAP:
                        break
                    rows[n] = store_row(s, i)[0]
                    ks[n] = <int> k
                    n += 1
                else:
                    continue
                break           # (more than the rows hold: collect)
            else:
                stream._take_closed()
                return n
    stream.collect(symbol, self._pending, self._wanted)
    return 0


cdef int _deliver_closed(SessionCore self, SymbolStream stream, object symbol,
                         const BarRow* rows, const int* ks, Py_ssize_t n) except -1:
    """Deliver the bar_closed events of one bar's closed bars (``_after_bar_news``) as they
    are made, without the pending list: each event goes to every subscriber that wants the
    kind, then back to the pool unless a callback kept it.  As ``_deliver_c``: one loop
    delivers at a time (what a callback's own calls make waits in ``_pending`` and is
    delivered after these, in order), a callback that raised goes to ``_callback_failed``,
    one to re-raise is raised when every event is out."""
    cdef Event ev
    cdef PyObject* args[2]
    cdef PyObject* res
    cdef PyObject* p
    cdef Subscriber* tab
    cdef Py_ssize_t i, j, m
    cdef object failure = None, exc
    if self._subscribers is not self._subs_of:
        self._subs_build()
    tab = self._subs_tab
    m = self._subs_n
    args[0] = NULL
    self._delivering = True
    try:
        for i in range(n):
            ev = _bar_closed(symbol, stream._name(ks[i]), &rows[i])
            args[1] = <PyObject*> ev
            for j in range(m):
                if tab[j].mask & (1 << EV_BAR_CLOSED):
                    res = sd_call1(tab[j].fn, &args[1])
                    if res == NULL:
                        exc = self._callback_failed(ev, <object> tab[j].sub)
                        if exc is not None and failure is None:
                            failure = exc
                    else:
                        Py_XDECREF(res)
            # This reference handed to the pool (or dropped) as the pending list's would be.
            p = <PyObject*> ev
            Py_INCREF(ev)
            ev = None
            _event_release(p)
    finally:
        self._delivering = False
    if PyList_GET_SIZE(self._pending):
        _deliver_rest(self, failure)
    if failure is not None:
        raise failure
    return 0


cdef int _deliver_rest(SessionCore self, object failure) except -1:
    """What the callbacks' own calls left pending during ``_deliver_closed``; an error to
    re-raise from them gives way to ``failure`` (the first one is raised, as in one loop)."""
    try:
        self._deliver_c()
    except Exception:
        if failure is None:
            raise
    return 0


cdef int _queue_closed_first(SessionCore self, SymbolStream stream, object symbol,
                             const BarRow* rows, const int* ks, Py_ssize_t n) except -1:
    """Put the bar_closed events of ``rows`` at the head of ``_pending``, in their order:
    where ``collect`` would have put them, before what the scan that came with the bar
    told."""
    cdef Py_ssize_t i
    for i in range(n):
        self._pending.insert(i, _bar_closed(symbol, stream._name(ks[i]), &rows[i]))
    return 0


cdef int _after_bar_rest(SessionCore self, SymbolStream stream, object symbol) except -1:
    """``_after_bar`` when the bar has news, the clock entered a new slot or events wait:
    collect (or copy the closed bars for ``_deliver_closed``), scan (its events, if any,
    queued behind the copied bars'), count the stream current, deliver."""
    cdef Py_ssize_t n_closed = 0
    cdef BarRow rows[DIRECT_CAP]
    cdef int ks[DIRECT_CAP]
    if (stream.last_closed or stream.gaps.runs != stream.seen.runs
            or stream.ann_until != NO_BAR
            or stream.n_revs or stream.seen_n + 1 != stream.base.n):
        n_closed = _after_bar_news(self, stream, symbol, rows, ks)
    else:
        _follow_bar(stream)
    if self._clock >= self._next_scan:
        self._scan_all_c(self._clock)
    _count_current(self, stream)
    if n_closed:
        if PyList_GET_SIZE(self._pending):
            # The scan told something (a symbol missed the slot): its events come after the
            # bar's, as when collect had queued them first; one loop delivers them all.
            _queue_closed_first(self, stream, symbol, rows, ks, n_closed)
            self._deliver_c()
        else:
            _deliver_closed(self, stream, symbol, rows, ks, n_closed)
    elif (self._pending is not None and PyList_GET_SIZE(self._pending)
            and not self._defer and not self._delivering):
        self._deliver_c()
    return 0


cdef inline void _follow_bar(SymbolStream stream) noexcept:
    """A bar with nothing to tell: the events' walker just follows, in the fields a bar in
    order moves (no run was recorded: runs, missing and overflow are the same; collect
    restarts from window and next_slot)."""
    sd_copy_ssize(stream.seen.window, stream.gaps.window)
    sd_copy_i64(stream.seen.next_slot, stream.gaps.next_slot)
    sd_copy_i64(stream.seen.present, stream.gaps.present)
    stream.seen_n = stream.base.n
    stream.stale_sent = False


cdef inline void _count_current(SessionCore self, SymbolStream stream) noexcept:
    """Count the stream current for the coming scan once its bars reached the slots that
    scan looks at (see ``_current`` and ``_scan_bits``)."""
    cdef i64 scan_at = self._next_scan
    cdef Py_ssize_t i
    if stream.counted_for != scan_at and stream.gaps.next_slot >= _grace_until(
            scan_at, stream.base_ns, self._grace_slots):
        stream.counted_for = scan_at
        self._current += 1
        i = stream.scan_idx
        if 0 <= i < self._scan_n:     # (its row in the table of this registry: see _scan_build)
            self._scan_bits[i >> 6] |= (<u64> 1) << (i & 63)


cdef inline int _after_bar(SessionCore self, SymbolStream stream, object symbol) except -1:
    """A bar was stored and someone listens: collect its events, scan the streams when
    the clock entered a new slot, deliver (unless a caller holds the registry lock).
    Inlined in ``add_bar``: the common bar (no news, no new slot, nothing pending) follows
    and counts here and calls nothing; the rest is ``_after_bar_rest``, out of line."""
    if (stream.last_closed or stream.gaps.runs != stream.seen.runs
            or stream.ann_until != NO_BAR
            or stream.n_revs or stream.seen_n + 1 != stream.base.n
            or self._clock >= self._next_scan
            or (self._pending is not None and PyList_GET_SIZE(self._pending))):
        return _after_bar_rest(self, stream, symbol)
    _follow_bar(stream)
    _count_current(self, stream)
    return 0

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


sd_install_add_bar(SessionCore, <void*> _add_bar_impl, <void*> _add_bar_kw, _ADD_BAR_DOC)
