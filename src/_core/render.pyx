# The session documents' text: one session's compact JSON, rendered from the model's columns.
#
# documents.py lays the columns out (cell arrays per interval, gaps in cell order, the few
# texts that stay Python's: a session's head and foot, rejected reasons, scored spans,
# anomaly sections) and this module writes the bytes, without the GIL, into a buffer of its
# own per call (no shared mutable state: threads may render sessions at once).
#
# Numbers are written as orjson writes them: integers in decimal; a float that documents.py
# rounded to d decimals as the decimal n / 10**d with its trailing zeros cut (the shortest
# text that reads back as the same double: see plain_float).  Every other float (NaN, -0.0,
# tiny, huge, or not a d-decimal) is written from a text documents.py made with orjson.

from libc.math cimport fabs, isfinite, llround, signbit
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t
cimport cython
from libc.errno cimport EIO, ENOMEM, errno
from libc.stdio cimport FILE, fclose, fopen, fwrite
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, strlen
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE

ctypedef int64_t i64
ctypedef double f64

cdef enum:
    MAX_DIGITS = 9      # decimals of a plain float
    MAX_KINDS = 32      # gap kinds a document can count
    # Fields of the cell arrays (documents.py stacks them in this order).
    F_BARS = 0
    F_EXPECTED = 1
    F_PRESENT = 2
    F_PARTIAL = 3
    F_LOST = 4
    N_INT_FIELDS = 5
    F_SCORE = 0
    F_COVERAGE = 1
    F_DATA_QUALITY = 2
    N_FLOAT_FIELDS = 3

cdef f64[MAX_DIGITS + 1] POW10_F = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9]
# orjson writes a float whose decimal exponent is below -5 in exponent form (1e-6): a plain
# d-decimal n / 10**d needs |n| >= 10**(d - 5).
cdef i64[MAX_DIGITS + 1] SMALLEST_N = [1, 1, 1, 1, 1, 1, 10, 100, 1000, 10000]
# Larger n (|v| * 10**d beyond 2**50) keep the spacing of doubles below half a decimal step,
# so n / 10**d is the only d-decimal that reads back as v; beyond, the caller's text is used.
cdef f64 LARGEST_N = 1125899906842624.0


cdef inline bint plain_float(f64 v, int digits, i64* n) noexcept nogil:
    """Whether ``v`` (rounded to ``digits`` decimals) is written as the decimal
    ``n / 10**digits``, trailing zeros cut; sets ``n``."""
    cdef f64 scale, x
    cdef i64 m
    if not isfinite(v):
        return False
    if v == 0.0:
        n[0] = 0
        return not signbit(v)       # -0.0 is "-0.0": the caller's text
    scale = POW10_F[digits]
    x = v * scale
    if fabs(x) >= LARGEST_N:
        return False
    m = llround(x)
    if (m if m >= 0 else -m) < SMALLEST_N[digits] or <f64>m / scale != v:
        return False
    n[0] = m
    return True


cdef struct Buf:
    char* data
    Py_ssize_t size
    Py_ssize_t cap
    bint failed         # out of memory: further writes are dropped, the caller raises
    bint bad_float      # a float neither plain nor given a text (a bug of the caller)


cdef char* grow(Buf* b, Py_ssize_t need) noexcept nogil:
    """Room for ``need`` more bytes, by doubling (NULL, and ``failed``, when out of memory)."""
    cdef Py_ssize_t cap = b.cap * 2
    cdef char* data
    if b.failed:
        return NULL
    if cap < b.size + need:
        cap = b.size + need
    data = <char*>realloc(b.data, cap)
    if data == NULL:
        b.failed = True
        return NULL
    b.data = data
    b.cap = cap
    return b.data + b.size


cdef inline void put(Buf* b, const char* text, Py_ssize_t n) noexcept nogil:
    cdef char* at
    if b.size + n <= b.cap:
        at = b.data + b.size
    else:
        at = grow(b, n)
        if at == NULL:
            return
    memcpy(at, text, n)
    b.size += n


cdef inline void put_str(Buf* b, const char* text) noexcept nogil:
    put(b, text, strlen(text))     # a literal's length: folded by the C compiler


cdef inline int put_digits(char* tmp, int i, uint64_t u, bint negative) noexcept nogil:
    """The decimal digits of ``u`` (at least one), and a minus sign when ``negative``,
    written backwards into ``tmp`` ending before ``i``; returns where they start."""
    while True:
        i -= 1
        tmp[i] = <char>(48 + u % 10)
        u //= 10
        if u == 0:
            break
    if negative:
        i -= 1
        tmp[i] = b'-'
    return i


cdef inline void put_int(Buf* b, i64 value) noexcept nogil:
    cdef char[24] tmp
    cdef uint64_t u = <uint64_t>value if value >= 0 else <uint64_t>0 - <uint64_t>value
    cdef int i = put_digits(tmp, 24, u, value < 0)
    put(b, &tmp[i], 24 - i)


cdef inline void put_decimal(Buf* b, i64 n, int digits) noexcept nogil:
    """``n / 10**digits`` with at least one decimal and no trailing zero beyond it."""
    cdef char[32] tmp
    cdef int i = 32, end = 32, k
    cdef uint64_t u = <uint64_t>n if n >= 0 else <uint64_t>0 - <uint64_t>n
    for k in range(digits):
        i -= 1
        tmp[i] = <char>(48 + u % 10)
        u //= 10
    if digits == 0:
        i -= 1
        tmp[i] = b'0'
    while end - i > 1 and tmp[end - 1] == b'0':
        end -= 1
    i -= 1
    tmp[i] = b'.'
    i = put_digits(tmp, i, u, n < 0)
    put(b, &tmp[i], end - i)


cdef inline void put_time(Buf* b, int32_t sod) noexcept nogil:
    """A second of the day as ``"HH:MM:SS"`` (quoted)."""
    cdef char[10] tmp
    cdef int h = sod // 3600, m = (sod // 60) % 60, s = sod % 60
    tmp[0] = b'"'
    tmp[1] = <char>(48 + h // 10)
    tmp[2] = <char>(48 + h % 10)
    tmp[3] = b':'
    tmp[4] = <char>(48 + m // 10)
    tmp[5] = <char>(48 + m % 10)
    tmp[6] = b':'
    tmp[7] = <char>(48 + s // 10)
    tmp[8] = <char>(48 + s % 10)
    tmp[9] = b'"'
    put(b, tmp, 10)


def plain_floats(const f64[::1] values, int digits):
    """Which of ``values`` (rounded to ``digits`` decimals, 0..9) the renderer writes itself
    (uint8 1) and which need a text made by orjson (0)."""
    import numpy as np

    if not 0 <= digits <= MAX_DIGITS:
        raise ValueError(f"plain_floats: digits must be 0..{MAX_DIGITS}, got {digits}")
    cdef Py_ssize_t i, n = values.shape[0]
    out = np.zeros(n, np.uint8)
    cdef uint8_t[::1] o = out
    cdef i64 m
    with nogil:
        for i in range(n):
            o[i] = plain_float(values[i], digits, &m)
    return out


def format_float(f64 value, int digits):
    """The renderer's text of ``value`` (rounded to ``digits`` decimals), or None when it
    leaves the value to orjson (for tests: the text must be orjson's)."""
    cdef i64 m
    cdef Buf b
    if not 0 <= digits <= MAX_DIGITS:
        raise ValueError(f"format_float: digits must be 0..{MAX_DIGITS}, got {digits}")
    if not plain_float(value, digits, &m):
        return None
    b.data = NULL
    b.size = b.cap = 0
    b.failed = b.bad_float = False
    put_decimal(&b, m, digits)
    try:
        if b.failed:
            raise MemoryError()
        return PyBytes_FromStringAndSize(b.data, b.size)
    finally:
        free(b.data)


@cython.auto_pickle(False)
cdef class SessionRenderer:
    """Writes the compact JSON text of a run's session documents, session by session.

    Built once per run by ``documents`` from the model's columns (see ``render.pyi`` for
    the shapes); :meth:`render` may be called from several threads at once.
    """

    cdef Py_ssize_t n_s, n_k, n_iv, n_kinds
    cdef const i64[:, :, :, ::1] ints          # [interval, field, symbol, session]
    cdef const f64[:, :, :, ::1] floats        # [interval, field, symbol, session]
    cdef const int32_t[:, :, :, ::1] float_alt  # text index of a float not plain, else -1
    cdef const i64[:, ::1] gap_off             # [interval, symbol * n_k + session + 1]
    cdef const int32_t[::1] gap_start          # seconds of the day, local
    cdef const int32_t[::1] gap_end
    cdef const i64[::1] gap_count
    cdef const int8_t[::1] gap_kind
    cdef const f64[::1] gap_activity
    cdef const f64[::1] gap_share
    cdef const int32_t[::1] activity_alt
    cdef const int32_t[::1] share_alt
    cdef const uint8_t[::1] iv_kinds           # the interval's gaps carry kinds
    cdef const int32_t[::1] iv_name            # text: '"NAME":{"bars":'
    cdef const uint8_t[:, ::1] scored          # [interval, symbol]
    cdef const int32_t[:, ::1] symbol_ivs      # [symbol, i]: its intervals, -1 after
    cdef const int32_t[::1] symbol_head        # text: 'KEY:{"symbol":KEY,...,"is_loaded":'
    cdef const uint8_t[:, ::1] member          # [symbol, session]
    cdef const uint8_t[:, ::1] loaded
    cdef const int32_t[:, ::1] rejected        # text of a cell's rejected bars, -1: {}
    cdef const int32_t[:, ::1] tail            # text: ',"scored_from":...', -1: none
    cdef const int32_t[:, ::1] anomalies       # text of a cell's anomalies, -1: none given
    cdef const int32_t[::1] kind_name          # text: '"no_trade"', ...
    cdef const uint8_t[::1] texts
    cdef const i64[::1] text_off
    cdef int anomaly_iv                        # interval carrying "anomalies", -1: none
    cdef int32_t no_anomaly                    # text of a cell without anomalies
    cdef int float_digits[N_FLOAT_FIELDS]
    cdef int gap_digits

    def __init__(self, ints, floats, float_alt, gap_off, gap_start, gap_end, gap_count,
                 gap_kind, gap_activity, gap_share, activity_alt, share_alt, iv_kinds,
                 iv_name, scored, symbol_ivs, symbol_head, member, loaded, rejected, tail,
                 anomalies, kind_name, texts, text_off, int anomaly_iv, int no_anomaly,
                 float_digits, int gap_digits):
        self.ints = ints
        self.floats = floats
        self.float_alt = float_alt
        self.gap_off = gap_off
        self.gap_start = gap_start
        self.gap_end = gap_end
        self.gap_count = gap_count
        self.gap_kind = gap_kind
        self.gap_activity = gap_activity
        self.gap_share = gap_share
        self.activity_alt = activity_alt
        self.share_alt = share_alt
        self.iv_kinds = iv_kinds
        self.iv_name = iv_name
        self.scored = scored
        self.symbol_ivs = symbol_ivs
        self.symbol_head = symbol_head
        self.member = member
        self.loaded = loaded
        self.rejected = rejected
        self.tail = tail
        self.anomalies = anomalies
        self.kind_name = kind_name
        self.texts = texts
        self.text_off = text_off
        self.anomaly_iv = anomaly_iv
        self.no_anomaly = no_anomaly
        self.n_iv, _, self.n_s, self.n_k = (ints.shape[0], ints.shape[1], ints.shape[2],
                                            ints.shape[3])
        self.n_kinds = kind_name.shape[0]
        self.gap_digits = gap_digits
        if len(float_digits) != N_FLOAT_FIELDS:
            raise ValueError(f"float_digits: {N_FLOAT_FIELDS} values, got {len(float_digits)}")
        for i, d in enumerate(float_digits):
            if not 0 <= d <= MAX_DIGITS:
                raise ValueError(f"float_digits must be 0..{MAX_DIGITS}, got {d}")
            self.float_digits[i] = d
        if not 0 <= gap_digits <= MAX_DIGITS:
            raise ValueError(f"gap_digits must be 0..{MAX_DIGITS}, got {gap_digits}")
        self._check()

    def _check(self):
        """The shapes agree and every index points inside its array (the loops trust them)."""
        cdef Py_ssize_t n_s = self.n_s, n_k = self.n_k, n_iv = self.n_iv
        cdef Py_ssize_t n_g = self.gap_start.shape[0], n_t = self.text_off.shape[0] - 1
        import numpy as np

        def fail(what):
            raise ValueError(f"SessionRenderer: {what}")

        if self.ints.shape[1] != N_INT_FIELDS or np.asarray(self.floats).shape != (
                n_iv, N_FLOAT_FIELDS, n_s, n_k) or np.asarray(self.float_alt).shape != (
                n_iv, N_FLOAT_FIELDS, n_s, n_k):
            fail("cell arrays of mismatched shapes")
        if self.n_kinds > MAX_KINDS:
            fail(f"at most {MAX_KINDS} gap kinds, got {self.n_kinds}")
        if n_t < 0 or self.text_off[0] != 0 or self.text_off[n_t] != self.texts.shape[0] or (
                n_t and np.any(np.diff(np.asarray(self.text_off)) < 0)):
            fail("text offsets do not cover the texts")
        for name, n in (("gap_end", self.gap_end.shape[0]),
                        ("gap_count", self.gap_count.shape[0]),
                        ("gap_kind", self.gap_kind.shape[0]),
                        ("gap_activity", self.gap_activity.shape[0]),
                        ("gap_share", self.gap_share.shape[0]),
                        ("activity_alt", self.activity_alt.shape[0]),
                        ("share_alt", self.share_alt.shape[0])):
            if n != n_g:
                fail(f"{name} has {n} values for {n_g} gaps")
        off = np.asarray(self.gap_off)
        if off.shape != (n_iv, n_s * n_k + 1) or (off.size and (
                np.any(np.diff(off, axis=1) < 0) or off.min() < 0 or off.max() > n_g)):
            fail("gap offsets out of order or range")
        for name, arr, lo, hi in (
                ("gap_start", self.gap_start, 0, 86_399), ("gap_end", self.gap_end, 0, 86_399),
                ("gap_kind", self.gap_kind, 0, self.n_kinds - 1)):
            a = np.asarray(arr)
            if a.size and (a.min() < lo or a.max() > hi):
                fail(f"{name} outside {lo}..{hi}")
        for name, arr in (("float_alt", self.float_alt), ("activity_alt", self.activity_alt),
                          ("share_alt", self.share_alt), ("iv_name", self.iv_name),
                          ("symbol_head", self.symbol_head), ("rejected", self.rejected),
                          ("tail", self.tail), ("anomalies", self.anomalies),
                          ("kind_name", self.kind_name)):
            a = np.asarray(arr)
            if a.size and (a.min() < -1 or a.max() >= n_t):
                fail(f"{name}: text index outside the texts")
        if self.iv_kinds.shape[0] != n_iv or self.iv_name.shape[0] != n_iv:
            fail("per-interval arrays of mismatched length")
        if np.any(np.asarray(self.iv_name) < 0) or np.any(np.asarray(self.symbol_head) < 0) \
                or np.any(np.asarray(self.kind_name) < 0):
            fail("a name without its text")
        for name, arr, shape in (("scored", self.scored, (n_iv, n_s)),
                                 ("symbol_head", self.symbol_head, (n_s,)),
                                 ("member", self.member, (n_s, n_k)),
                                 ("loaded", self.loaded, (n_s, n_k)),
                                 ("rejected", self.rejected, (n_s, n_k)),
                                 ("tail", self.tail, (n_s, n_k)),
                                 ("anomalies", self.anomalies, (n_s, n_k))):
            if np.asarray(arr).shape != shape:
                fail(f"{name} of shape {np.asarray(arr).shape}, expected {shape}")
        ivs = np.asarray(self.symbol_ivs)
        if ivs.shape[0] != n_s or (ivs.size and (ivs.min() < -1 or ivs.max() >= n_iv)):
            fail("symbol_ivs: interval index out of range")
        if not -1 <= self.anomaly_iv < n_iv or not 0 <= self.no_anomaly < n_t:
            fail("anomaly interval or text out of range")

    cdef inline void put_text(self, Buf* b, int32_t i) noexcept nogil:
        put(b, <const char*>&self.texts[0] + self.text_off[i],
            self.text_off[i + 1] - self.text_off[i])

    cdef inline void put_float(self, Buf* b, f64 v, int digits, int32_t alt) noexcept nogil:
        cdef i64 m
        if alt >= 0:
            self.put_text(b, alt)
        elif plain_float(v, digits, &m):
            put_decimal(b, m, digits)
        else:
            b.bad_float = True  # documents.py gives a text for every float not plain
            put(b, "null", 4)

    cdef void open_buf(self, Buf* b) noexcept:
        b.cap = 4096 + 1600 * self.n_s
        b.data = <char*>malloc(b.cap)
        b.size = 0
        b.failed = b.data == NULL
        b.bad_float = False
        if b.failed:
            b.cap = 0       # every write goes to grow(), which writes nothing

    cdef void document(self, Buf* b, Py_ssize_t k, const char* head, Py_ssize_t n_head,
                       const char* foot, Py_ssize_t n_foot) noexcept nogil:
        put(b, head, n_head)
        self.symbols(b, k)
        put(b, foot, n_foot)

    def render(self, Py_ssize_t k, bytes head not None, bytes foot not None):
        """The document of session ``k``: ``head`` (its fields up to ``"symbols":{``), the
        symbols of the session, ``foot`` (``},"unknown_bars":...}`` and a newline)."""
        cdef Buf b
        cdef const char* h = PyBytes_AS_STRING(head)
        cdef const char* t = PyBytes_AS_STRING(foot)
        cdef Py_ssize_t n_h = PyBytes_GET_SIZE(head), n_t = PyBytes_GET_SIZE(foot)
        if not 0 <= k < self.n_k:
            raise IndexError(f"session {k} out of range 0..{self.n_k - 1}")
        self.open_buf(&b)
        try:
            with nogil:
                self.document(&b, k, h, n_h, t, n_t)
            if b.failed:
                raise MemoryError(f"out of memory rendering the document of session {k}")
            if b.bad_float:
                raise ValueError(f"session {k}: a float the renderer cannot write was given "
                                 "no text")
            return PyBytes_FromStringAndSize(b.data, b.size)
        finally:
            free(b.data)

    def write_files(self, sessions, heads, feet, paths):
        """Render the documents of ``sessions`` (``heads[i]`` and ``feet[i]`` as in
        :meth:`render`) and write each to ``paths[i]`` (bytes: a file system path), all
        without the GIL, through one buffer.  Returns None, or ``(i, errno)`` for the first
        document that could not be written (``errno`` 0: a float without its text)."""
        cdef Py_ssize_t n = len(sessions), i, fail = -1, done
        cdef int err = 0
        cdef Buf b
        cdef FILE* f
        cdef i64* ks
        cdef const char** text
        cdef Py_ssize_t* size
        if not len(heads) == len(feet) == len(paths) == n:
            raise ValueError(f"write_files: {n} sessions, {len(heads)} heads, "
                             f"{len(feet)} feet, {len(paths)} paths")
        for i in range(n):
            if not 0 <= sessions[i] < self.n_k:
                raise IndexError(f"session {sessions[i]} out of range 0..{self.n_k - 1}")
            if not (type(heads[i]) is bytes and type(feet[i]) is bytes
                    and type(paths[i]) is bytes):
                raise TypeError("write_files: heads, feet and paths must be bytes")
            if b"\0" in paths[i]:
                raise ValueError(f"write_files: a NUL byte in the path {paths[i]!r}")
        if n == 0:
            return None
        ks = <i64*>malloc(n * sizeof(i64))
        text = <const char**>malloc(3 * n * sizeof(char*))
        size = <Py_ssize_t*>malloc(2 * n * sizeof(Py_ssize_t))
        self.open_buf(&b)
        try:
            if ks == NULL or text == NULL or size == NULL or b.failed:
                raise MemoryError("write_files: out of memory")
            # Pointers into the caller's bytes objects, which its lists hold meanwhile.
            for i in range(n):
                ks[i] = sessions[i]
                text[3 * i] = PyBytes_AS_STRING(heads[i])
                size[2 * i] = PyBytes_GET_SIZE(heads[i])
                text[3 * i + 1] = PyBytes_AS_STRING(feet[i])
                size[2 * i + 1] = PyBytes_GET_SIZE(feet[i])
                text[3 * i + 2] = PyBytes_AS_STRING(paths[i])
            with nogil:
                for i in range(n):
                    b.size = 0
                    self.document(&b, ks[i], text[3 * i], size[2 * i], text[3 * i + 1],
                                  size[2 * i + 1])
                    if b.failed or b.bad_float:
                        fail, err = i, (ENOMEM if b.failed else 0)
                        break
                    f = fopen(text[3 * i + 2], "wb")
                    if f == NULL:
                        fail, err = i, errno
                        break
                    done = fwrite(b.data, 1, b.size, f)
                    if done != b.size:
                        fail, err = i, (errno if errno else EIO)
                        fclose(f)
                        break
                    if fclose(f) != 0:
                        fail, err = i, (errno if errno else EIO)
                        break
        finally:
            free(b.data)
            free(ks)
            free(text)
            free(size)
        return None if fail < 0 else (fail, err)

    cdef void symbols(self, Buf* b, Py_ssize_t k) noexcept nogil:
        cdef Py_ssize_t s, i, j, g, lo, hi
        cdef int iv, q
        cdef bint first = True, first_iv, first_kind, kinds
        cdef i64 e, p, missing
        cdef int32_t text, text_a
        cdef i64[MAX_KINDS] kind_gaps
        cdef i64[MAX_KINDS] kind_missing
        for s in range(self.n_s):
            if not self.member[s, k]:
                continue
            if not first:
                put(b, ",", 1)
            first = False
            self.put_text(b, self.symbol_head[s])
            if self.loaded[s, k]:
                put(b, "true", 4)
            else:
                put(b, "false", 5)
            put_str(b, ',"rejected":')
            text = self.rejected[s, k]
            if text >= 0:
                self.put_text(b, text)
            else:
                put(b, "{}", 2)
            put_str(b, ',"intervals":{')
            first_iv = True
            for i in range(self.symbol_ivs.shape[1]):
                iv = self.symbol_ivs[s, i]
                if iv < 0:
                    break
                if not first_iv:
                    put(b, ",", 1)
                first_iv = False
                kinds = self.iv_kinds[iv]
                self.put_text(b, self.iv_name[iv])
                put_int(b, self.ints[iv, F_BARS, s, k])
                if self.scored[iv, s]:
                    e = self.ints[iv, F_EXPECTED, s, k]
                    p = self.ints[iv, F_PRESENT, s, k]
                    put_str(b, ',"quality":{"score":')
                    self.put_float(b, self.floats[iv, F_SCORE, s, k],
                                   self.float_digits[F_SCORE], self.float_alt[iv, F_SCORE, s, k])
                    put_str(b, ',"expected":')
                    put_int(b, e)
                    put_str(b, ',"present":')
                    put_int(b, p)
                    put_str(b, ',"missing":')
                    put_int(b, e - p)
                    put_str(b, ',"partial":')
                    put_int(b, self.ints[iv, F_PARTIAL, s, k])
                    put_str(b, ',"coverage":')
                    self.put_float(b, self.floats[iv, F_COVERAGE, s, k],
                                   self.float_digits[F_COVERAGE],
                                   self.float_alt[iv, F_COVERAGE, s, k])
                    put_str(b, ',"rejected":')
                    if text >= 0:
                        self.put_text(b, text)
                    else:
                        put(b, "{}", 2)
                    if kinds:
                        put_str(b, ',"data_quality":')
                        self.put_float(b, self.floats[iv, F_DATA_QUALITY, s, k],
                                       self.float_digits[F_DATA_QUALITY],
                                       self.float_alt[iv, F_DATA_QUALITY, s, k])
                        put_str(b, ',"lost":')
                        put_int(b, self.ints[iv, F_LOST, s, k])
                    put(b, "}", 1)
                j = s * self.n_k + k
                lo = self.gap_off[iv, j]
                hi = self.gap_off[iv, j + 1]
                missing = 0
                for g in range(lo, hi):
                    missing += self.gap_count[g]
                put_str(b, ',"gaps":{"gap_count":')
                put_int(b, hi - lo)
                put_str(b, ',"missing_bars":')
                put_int(b, missing)
                put_str(b, ',"ranges":[')
                for g in range(lo, hi):
                    if g > lo:
                        put(b, ",", 1)
                    put_str(b, '{"start_time":')
                    put_time(b, self.gap_start[g])
                    put_str(b, ',"end_time":')
                    put_time(b, self.gap_end[g])
                    put_str(b, ',"bar_count":')
                    put_int(b, self.gap_count[g])
                    if kinds:
                        put_str(b, ',"kind":')
                        self.put_text(b, self.kind_name[self.gap_kind[g]])
                        put_str(b, ',"activity":')
                        self.put_float(b, self.gap_activity[g], self.gap_digits,
                                       self.activity_alt[g])
                        put_str(b, ',"share_missing":')
                        self.put_float(b, self.gap_share[g], self.gap_digits,
                                       self.share_alt[g])
                    put(b, "}", 1)
                put(b, "]", 1)
                if kinds:
                    # Per kind present, in the kinds' order: its gaps and missing bars.
                    for q in range(self.n_kinds):
                        kind_gaps[q] = 0
                        kind_missing[q] = 0
                    for g in range(lo, hi):
                        kind_gaps[self.gap_kind[g]] += 1
                        kind_missing[self.gap_kind[g]] += self.gap_count[g]
                    put_str(b, ',"kinds":{')
                    first_kind = True
                    for q in range(self.n_kinds):
                        if kind_gaps[q]:
                            if not first_kind:
                                put(b, ",", 1)
                            first_kind = False
                            self.put_text(b, self.kind_name[q])
                            put_str(b, ':{"gap_count":')
                            put_int(b, kind_gaps[q])
                            put_str(b, ',"missing_bars":')
                            put_int(b, kind_missing[q])
                            put(b, "}", 1)
                    put(b, "}", 1)
                put(b, "}", 1)
                if iv == self.anomaly_iv:
                    put_str(b, ',"anomalies":')
                    text_a = self.anomalies[s, k]
                    self.put_text(b, text_a if text_a >= 0 else self.no_anomaly)
                put(b, "}", 1)
            put(b, "}", 1)
            if self.tail[s, k] >= 0:
                self.put_text(b, self.tail[s, k])
            put(b, "}", 1)
