"""The session documents: one JSON document per session, built from the model's columns.

Reads :class:`~sessiondata.results.RunResult` (never the reverse).  Two paths, held equal
byte for byte by the tests: the files of an export are rendered by compiled code
(``_core/render.pyx``, :class:`_Documents`) straight from the columns, laid out once per run,
into text, without the GIL and without a Python object per cell; :func:`session_docs` gives
the documents as dicts (the reference, and the live registry's ``to_json``), every number
taken from lists made once per interval and column.  :func:`dumps` is the one JSON writer
(orjson): the renderer writes only the numbers whose text is orjson's by construction and
takes the others' text from it.  The schema is ``SessionData.to_json``'s; see DESIGN.md,
"JSON export".
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .results import (
    ANOMALY_KINDS,
    KINDS,
    RunResult,
    data_quality,
    kind_names,
    local_time,
    paused_gc,
    quality_score,
    seconds_of_day,
    times_of_day,
)
from ._core import render

if TYPE_CHECKING:  # pragma: no cover
    from .calendar import Calendar
    from .results import IntervalTable


def session_doc(run: RunResult, k: int) -> dict[str, Any]:
    """The JSON document of session ``k`` of ``run`` (the schema of ``SessionData.to_json``)."""
    return session_docs(run, [k])[0]


def session_fields(label: str, open_ns: Any, close_ns: Any, calendar: "Calendar") -> dict[str, Any]:
    """The session part of the JSON export: label, calendar, zone, windows in local time,
    and whether the session starts the evening before its date."""
    tz = calendar.tz
    opens = [local_time(t, tz) for t in np.asarray(open_ns).tolist()]
    closes = [local_time(t, tz) for t in np.asarray(close_ns).tolist()]
    return {
        "session": label,
        "calendar": calendar.name,
        "timezone": str(getattr(tz, "key", tz)),
        "windows": [{"open": o.isoformat(), "close": c.isoformat()}
                    for o, c in zip(opens, closes)],
        "starts_previous_day": opens[0].date().isoformat() < label if opens else False,
    }


def session_docs(run: RunResult, sessions: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """The JSON documents of ``sessions`` (default: all)."""
    with paused_gc():
        return list(iter_session_docs(run, sessions))


class _Layout:
    """The columns of a run's documents as :func:`session_docs` reads them, laid out once:
    per interval, lists in cell order ``j = session * symbols + symbol``
    (the order in which the documents read them: symbol by symbol inside a session, no
    stride through memory), every gap range made once."""

    def __init__(self, run: RunResult):
        self.run = run
        n_s, n_k = len(run.symbols), run.windows.n_sessions
        self.n_s, self.tz = n_s, run.calendar.tz
        tz = self.tz
        cols: dict[str, dict[str, Any]] = {}
        for name, t in run.intervals.items():
            order = np.lexsort((t.gap_start, t.gap_symbol, t.gap_session))
            g_start, g_end, g_count = t.gap_start[order], t.gap_end[order], t.gap_count[order]
            keys = t.gap_session[order] * n_s + t.gap_symbol[order]
            starts, ends = times_of_day(g_start, g_end, tz)
            e = t.expected.T.ravel()
            cov = t.covered.T.ravel()
            score = quality_score(cov, e)
            cols[name] = {
                "ranges": [{"start_time": a, "end_time": b, "bar_count": c}
                           for a, b, c in zip(starts, ends, g_count.tolist())],
                "offsets": np.searchsorted(keys, np.arange(n_s * n_k + 1)).tolist(),
                "missing": np.bincount(keys, weights=g_count, minlength=n_s * n_k)
                .astype(np.int64).tolist(),
                "bars": t.bars.T.ravel().tolist(), "expected": e.tolist(),
                "present": t.present.T.ravel().tolist(), "partial": t.partial.T.ravel().tolist(),
                "coverage": rounded(cov, 6), "score": rounded(score, 4),
                "has": t.has.tolist(), "scored": t.scored.tolist(),
            }
            if t.gap_kind is not None:  # gap kinds (classify.py): fields beside the seed's
                _kind_columns(cols[name], t, order, keys, n_s * n_k)
        self.cols = cols
        self.member = run.member
        self.loaded = run.loaded.T.tolist()       # [session][symbol]
        self.since = run.since_ns.T.tolist()
        self.until = run.until_ns.T.tolist()
        self.per_symbol = [(run.symbols[s], run.base_of(s), run.derived_of(s),
                            [(name, cols[name]) for name in run.intervals_of(s)
                             if cols[name]["has"][s]])
                           for s in range(n_s)]
        self.anomaly_iv, self.anomaly_cells = _anomaly_sections(run)
        self.s_open = run.windows.session_open_ns.tolist()
        self.s_close = run.windows.session_close_ns.tolist()


def _doc_maker(run: RunResult) -> Callable[[int], dict[str, Any]]:
    """A function that makes the document of a session ``k``, from columns laid out once
    (:func:`_layout`): every number is taken from lists made once per interval, every gap
    range is made once."""
    lay = _Layout(run)
    n_s, tz = lay.n_s, lay.tz
    cols, member, loaded, since, until = lay.cols, lay.member, lay.loaded, lay.since, lay.until
    per_symbol, anomaly_iv, anomaly_cells = lay.per_symbol, lay.anomaly_iv, lay.anomaly_cells
    s_open, s_close = lay.s_open, lay.s_close

    def make(k: int) -> dict[str, Any]:
        sl = run.windows.session_slice(k)
        doc = session_fields(str(run.sessions[k]), run.windows.open_ns[sl],
                             run.windows.close_ns[sl], run.calendar)
        first, last = s_open[k], s_close[k]
        symbols = {}
        loaded_k, since_k, until_k = loaded[k], since[k], until[k]
        for s in np.flatnonzero(member[:, k]).tolist():
            symbol, base, derived, intervals_s = per_symbol[s]
            j = k * n_s + s
            rejected = run.rejected.get((s, k), {}) if run.rejected else {}
            intervals = {}
            for name, c in intervals_s:
                lo, hi = c["offsets"][j], c["offsets"][j + 1]
                iv_doc: dict[str, Any] = {"bars": c["bars"][j]}
                if c["scored"][s]:
                    e, p = c["expected"][j], c["present"][j]
                    iv_doc["quality"] = {
                        "score": c["score"][j],
                        "expected": e,
                        "present": p,
                        "missing": e - p,
                        "partial": c["partial"][j],
                        "coverage": c["coverage"][j],
                        "rejected": dict(rejected),
                    }
                    if "lost" in c:  # the data quality: only lost data counts against it
                        iv_doc["quality"]["data_quality"] = round(c["data_quality"][j], 4)
                        iv_doc["quality"]["lost"] = c["lost"][j]
                iv_doc["gaps"] = {"gap_count": hi - lo, "missing_bars": c["missing"][j],
                                  "ranges": c["ranges"][lo:hi]}
                if "kinds" in c:
                    iv_doc["gaps"]["kinds"] = c["kinds"][j]
                if name == anomaly_iv:  # the anomaly detectors' (issue 22), beside the gaps
                    iv_doc["anomalies"] = anomaly_cells.get(j, _NO_ANOMALY)
                intervals[name] = iv_doc
            entry: dict[str, Any] = {
                "symbol": symbol,
                "base_interval": base,
                "derived_intervals": list(derived),
                "is_loaded": loaded_k[s],
                "rejected": dict(rejected),
                "intervals": intervals,
            }
            if since_k[s] > first:
                entry["scored_from"] = local_time(since_k[s], tz).isoformat()
            if until_k[s] < last:
                entry["scored_to"] = local_time(until_k[s], tz).isoformat()
            symbols[symbol] = entry
        doc["symbols"] = symbols
        doc["unknown_bars"] = dict(run.unknown[k])
        return doc

    return make

def _dump(value: Any) -> str:
    """``value`` as compact JSON text (no final newline)."""
    return dumps(value, indent=False)[:-1].decode()


def _dumpb(value: Any) -> bytes:
    """``value`` as compact JSON bytes (no final newline)."""
    return dumps(value, indent=False)[:-1]


# Decimals of the rounded floats of a document: quality score, coverage, data quality, and a
# gap's activity and share of symbols missing.
_SCORE_DIGITS, _COVERAGE_DIGITS, _DATA_QUALITY_DIGITS, _GAP_DIGITS = 4, 6, 4, 4


class _Texts:
    """The texts the renderer copies as they are (names, rejected reasons, anomaly sections,
    floats it does not write itself), each by its index in one blob."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def add(self, text: bytes) -> int:
        self.parts.append(text)
        return len(self.parts) - 1

    def floats(self, values: np.ndarray, digits: int) -> np.ndarray:
        """Per value of ``values`` (rounded to ``digits`` decimals): -1 where the renderer
        writes it, else the index of orjson's text of it (NaN: ``null``; ``-0.0``, tiny and
        huge values: orjson's forms), made once per distinct value."""
        flat = np.ascontiguousarray(values, np.float64).ravel()
        alt = np.full(flat.shape, -1, np.int32)
        other = np.flatnonzero(render.plain_floats(flat, digits) == 0)
        if len(other):
            bits, inverse = np.unique(flat[other].view(np.int64), return_inverse=True)
            index = np.array([self.add(_dumpb(float(v))) for v in bits.view(np.float64)],
                             np.int32)
            alt[other] = index[inverse.ravel()]
        return alt.reshape(np.shape(values))

    def arrays(self) -> tuple[bytes, np.ndarray]:
        offsets = np.zeros(len(self.parts) + 1, np.int64)
        np.cumsum([len(p) for p in self.parts], out=offsets[1:])
        return b"".join(self.parts), offsets


def _renderer(run: RunResult) -> "render.SessionRenderer":
    """The compiled writer of ``run``'s documents (``_core/render.pyx``), from the model's
    columns laid out once: per interval and field an array of symbols x sessions, the gaps
    of all intervals in one set of arrays (by interval, symbol, session, start) with each
    cell's slice, and the few texts that stay Python's (names, rejected reasons, scored
    spans cut inside a session, anomaly sections, floats orjson writes in a form of its
    own)."""
    n_s, n_k = len(run.symbols), run.windows.n_sessions
    tz = run.calendar.tz
    names = list(run.intervals)
    n_iv = len(names)
    texts = _Texts()
    # Filled in place, interval by interval: no stack of copies (the layout's peak memory).
    ints = np.empty((n_iv, 5, n_s, n_k), np.int64)
    floats = np.empty((n_iv, 3, n_s, n_k), np.float64)
    alts = np.empty((n_iv, 3, n_s, n_k), np.int32)
    offsets = np.empty((n_iv, n_s * n_k + 1), np.int64)
    digits = (_SCORE_DIGITS, _COVERAGE_DIGITS, _DATA_QUALITY_DIGITS)
    g_parts: dict[str, list[np.ndarray]] = {f: [] for f in ("start", "end", "count", "kind",
                                                          "activity", "share")}
    n_g = 0
    for i, t in enumerate(run.intervals.values()):
        keys = t.gap_symbol * n_k + t.gap_session
        if len(keys) > 1:
            step = np.diff(keys)
            if not np.all((step > 0) | ((step == 0) & (np.diff(t.gap_start) >= 0))):
                order = np.lexsort((t.gap_start, t.gap_session, t.gap_symbol))
                keys = keys[order]
            else:
                order = None
        else:
            order = None

        def gaps(col: np.ndarray) -> np.ndarray:
            return col if order is None else col[order]

        offsets[i] = np.searchsorted(keys, np.arange(n_s * n_k + 1))
        offsets[i] += n_g
        n_g += len(keys)
        g_parts["start"].append(gaps(t.gap_start))
        g_parts["end"].append(gaps(t.gap_end))
        g_parts["count"].append(gaps(t.gap_count))
        e = t.expected
        lost = t.lost if t.lost is not None else 0
        for f, col in enumerate((t.bars, e, t.present, t.partial, lost)):
            ints[i, f] = col
        floats[i, 0] = rounded_array(quality_score(t.covered, e), _SCORE_DIGITS)
        floats[i, 1] = rounded_array(t.covered, _COVERAGE_DIGITS)
        floats[i, 2] = (rounded_array(data_quality(e, lost), _DATA_QUALITY_DIGITS)
                        if t.gap_kind is not None else 0.0)
        for f, d in enumerate(digits):
            alts[i, f] = texts.floats(floats[i, f], d)
        if t.gap_kind is not None:
            assert t.gap_activity is not None and t.gap_share is not None
            kind = gaps(t.gap_kind)
            if len(kind) and (kind.min() < 0 or kind.max() >= len(KINDS)):
                raise ValueError(f"interval {t.name}: gap kind codes outside 0..{len(KINDS) - 1}")
            g_parts["kind"].append(kind)
            g_parts["activity"].append(np.round(gaps(t.gap_activity), _GAP_DIGITS))
            g_parts["share"].append(np.round(gaps(t.gap_share), _GAP_DIGITS))
        else:
            g_parts["kind"].append(np.zeros(len(keys), np.int8))
            g_parts["activity"].append(np.zeros(len(keys)))
            g_parts["share"].append(np.zeros(len(keys)))

    def joined(col: str, dtype: Any) -> np.ndarray:
        parts = g_parts[col]
        return np.ascontiguousarray(np.concatenate(parts) if parts else np.zeros(0), dtype)

    g_start, g_end = joined("start", np.int64), joined("end", np.int64)
    local = seconds_of_day(np.concatenate([g_start, g_end]), tz).astype(np.int32)
    activity, share = joined("activity", np.float64), joined("share", np.float64)
    activity_alt = texts.floats(activity, _GAP_DIGITS)
    share_alt = texts.floats(share, _GAP_DIGITS)

    rejected = np.full((n_s, n_k), -1, np.int32)
    for (s, k), reasons in (run.rejected or {}).items():
        if reasons:
            rejected[s, k] = texts.add(_dumpb(reasons))
    tail = np.full((n_s, n_k), -1, np.int32)
    late = run.since_ns > run.windows.session_open_ns[None, :]
    early = run.until_ns < run.windows.session_close_ns[None, :]
    for s, k in zip(*np.nonzero(late | early)):
        s, k = int(s), int(k)
        text = ""
        if late[s, k]:
            text += f',"scored_from":{_dump(local_time(int(run.since_ns[s, k]), tz).isoformat())}'
        if early[s, k]:
            text += f',"scored_to":{_dump(local_time(int(run.until_ns[s, k]), tz).isoformat())}'
        tail[s, k] = texts.add(text.encode())
    anomaly_name, anomaly_cells = _anomaly_sections(run)
    anomalies = np.full((n_s, n_k), -1, np.int32)
    for j, cell in anomaly_cells.items():
        anomalies[j % n_s, j // n_s] = texts.add(_dumpb(cell))

    symbol_ivs = np.full((n_s, max(1, len(names))), -1, np.int32)
    symbol_head = np.zeros(n_s, np.int32)
    for s in range(n_s):
        mine = [names.index(n) for n in run.intervals_of(s) if run.intervals[n].has[s]]
        if len(mine) > symbol_ivs.shape[1]:
            symbol_ivs = np.pad(symbol_ivs, ((0, 0), (0, len(mine) - symbol_ivs.shape[1])),
                                constant_values=-1)
        symbol_ivs[s, :len(mine)] = mine
        key = _dump(run.symbols[s])
        symbol_head[s] = texts.add(
            f'{key}:{{"symbol":{key},"base_interval":{_dump(run.base_of(s))},'
            f'"derived_intervals":{_dump(list(run.derived_of(s)))},"is_loaded":'.encode())
    iv_name = np.array([texts.add(_dumpb(n) + b':{"bars":') for n in names], np.int32)
    kind_name = np.array([texts.add(_dumpb(k)) for k in KINDS], np.int32)
    no_anomaly = texts.add(_dumpb(_NO_ANOMALY))
    blob, text_off = texts.arrays()

    scored = np.zeros((n_iv, n_s), np.uint8)
    for i, t in enumerate(run.intervals.values()):
        scored[i] = t.scored
    return render.SessionRenderer(
        ints, floats, alts, offsets,
        local[:len(g_start)], local[len(g_start):],
        joined("count", np.int64), joined("kind", np.int8), activity, share,
        activity_alt, share_alt,
        np.array([t.gap_kind is not None for t in run.intervals.values()], np.uint8),
        iv_name,
        scored,
        symbol_ivs, symbol_head,
        np.ascontiguousarray(run.member, np.uint8), np.ascontiguousarray(run.loaded, np.uint8),
        rejected, tail, anomalies, kind_name,
        np.frombuffer(blob, np.uint8), text_off,
        names.index(anomaly_name) if anomaly_name in names else -1, no_anomaly,
        (_SCORE_DIGITS, _COVERAGE_DIGITS, _DATA_QUALITY_DIGITS), _GAP_DIGITS)


class _Documents:
    """A run's session documents as text, from its columns laid out once (:func:`_renderer`):
    one session's bytes (:meth:`text`) or the files of many (:meth:`write`), rendered by
    compiled code without the GIL, so threads may call both at once."""

    def __init__(self, run: RunResult):
        self.run = run
        self.renderer = _renderer(run)

    def parts(self, k: int) -> tuple[str, bytes, bytes]:
        """Session ``k``'s label and the text of its document around the symbols."""
        run, windows = self.run, self.run.windows
        label = str(run.sessions[k])
        sl = windows.session_slice(k)
        head = _dumpb(session_fields(label, windows.open_ns[sl], windows.close_ns[sl],
                                     run.calendar))[:-1] + b',"symbols":{'
        foot = b'},"unknown_bars":' + _dumpb(run.unknown[k]) + b"}\n"
        return label, head, foot

    def text(self, k: int) -> tuple[str, bytes]:
        """Session ``k``'s label and the compact JSON of its document."""
        label, head, foot = self.parts(k)
        return label, self.renderer.render(k, head, foot)

    def write(self, sessions: Sequence[int], folder: Path) -> None:
        """Write the documents of ``sessions`` as ``folder/<session>.json``: rendered and
        written by the compiled code in one call without the GIL (on POSIX; on Windows
        from Python, one session at a time)."""
        parts = [self.parts(k) for k in sessions]
        if os.name == "nt":  # pragma: no cover - fopen there takes no UTF-8 paths
            for (label, head, foot), k in zip(parts, sessions):
                (folder / f"{label}.json").write_bytes(self.renderer.render(k, head, foot))
            return
        paths = [os.fsencode(folder / f"{label}.json") for label, _, _ in parts]
        failed = self.renderer.write_files(list(sessions), [p[1] for p in parts],
                                           [p[2] for p in parts], paths)
        if failed is not None:
            i, err = failed
            path = os.fsdecode(paths[i])
            if err == 0:
                raise ValueError(f"the document of session {parts[i][0]}: a float the "
                                 "renderer cannot write was given no text")
            if err == errno.ENOMEM:
                raise MemoryError(f"out of memory rendering {path}")
            raise OSError(err, f"writing the session document: {os.strerror(err)}", path)


def _doc_writer(run: RunResult) -> Callable[[int], tuple[str, bytes]]:
    """A function that makes the compact JSON text of session ``k``'s document (its label
    and bytes): what ``dumps(make(k), indent=False)`` gives for :func:`_doc_maker`'s
    ``make``, from the same model columns, written by the compiled renderer.
    ``tests/test_documents_text.py`` holds the two paths equal."""
    return _Documents(run).text


def iter_session_docs(run: RunResult,
                      sessions: Sequence[int] | None = None) -> Iterator[dict[str, Any]]:
    """The JSON documents of ``sessions`` (default: all), one at a time, built column by
    column (see :func:`_doc_maker`)."""
    make = _doc_maker(run)
    for k in (range(run.windows.n_sessions) if sessions is None else sessions):
        yield make(k)


def write_session_docs(run: RunResult, folder: Path, *, workers: int = 1) -> None:
    """Write every session's document as ``folder/<session>.json`` (compact JSON).

    The documents are rendered and written by compiled code without the GIL
    (:class:`_Documents`); with ``workers`` > 1 (and enough sessions) by threads (see
    :func:`start_session_docs`).  A thread that fails makes the call fail."""
    start_session_docs(run, folder, workers=workers)()


def start_session_docs(run: RunResult, folder: Path, *,
                       workers: int = 1) -> Callable[..., None]:
    """Start writing the session documents (see :func:`write_session_docs`) and return the
    function that waits for them.

    The columns are laid out once, here, before any thread starts: the layout holds the GIL
    and the rendering does not, so the threads render from the first moment while this
    thread goes on (laid out on a thread, it raced the export's other work for the GIL
    while the cores waited for it).  With ``workers`` > 1 (and at least
    ``MIN_SESSIONS_PER_WORKER`` sessions a thread), ``workers - 1`` threads write the
    documents a share at a time (:class:`_Shares`), while this thread is free until it waits
    (the export writes its gap dataset, summary and manifest meanwhile); waiting, it takes
    shares too, so no core idles while documents are left.  A share is rendered and written
    in one call without the GIL: a thread that took the GIL back once per file would wait
    for it behind a busy thread each time (up to the switch interval).  Else the documents
    are laid out and written when it waits.  Waiting raises when a share failed (the first
    error chained); ``wait(help=False)`` only lets the threads end (after an error of the
    caller's: the threads take no new share then)."""
    n_k = run.windows.n_sessions
    threads = max(0, min(workers - 1, n_k // MIN_SESSIONS_PER_WORKER))
    if threads == 0:
        return lambda help=True: _Documents(run).write(range(n_k), folder)
    shares = _Shares(n_k, SHARES_PER_THREAD * (threads + 1))
    docs = _Documents(run)
    pool = [threading.Thread(target=shares.write, args=(docs, folder),
                             name=f"sessiondata-docs-{i}", daemon=True)
            for i in range(threads)]
    for t in pool:
        t.start()

    def wait(help: bool = True) -> None:
        if help:
            shares.write(docs, folder)
        else:
            shares.stop()
        for t in pool:
            t.join()
        if shares.errors:
            first = shares.errors[0]
            raise RuntimeError(f"writing the session documents into {folder} failed "
                               f"({len(shares.errors)} error(s) among {threads} threads and "
                               f"the caller): {first!r}") from first

    return wait


class _Shares:
    """The sessions ``0..n-1`` cut into about ``parts`` runs of sessions that threads take in
    turn (:meth:`write`) until none is left, one fails or :meth:`stop` is called; the errors
    are kept for the waiter."""

    def __init__(self, n: int, parts: int):
        cuts = np.unique(np.linspace(0, n, max(1, min(parts, n)) + 1).astype(int)).tolist()
        self._runs = [range(a, b) for a, b in zip(cuts, cuts[1:])]
        self._next = 0
        self._lock = threading.Lock()
        self.errors: list[BaseException] = []

    def _take(self) -> range | None:
        with self._lock:
            if self.errors or self._next >= len(self._runs):
                return None
            self._next += 1
            return self._runs[self._next - 1]

    def write(self, docs: _Documents, folder: Path) -> None:
        while (share := self._take()) is not None:
            try:
                docs.write(share, folder)
            except BaseException as exc:
                self.failed(exc)

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self.errors.append(exc)

    def stop(self) -> None:
        with self._lock:
            self._next = len(self._runs)


# Shares a thread: enough that the threads finish together, few enough that each share is
# long (one call without the GIL).
SHARES_PER_THREAD = 4
MIN_SESSIONS_PER_WORKER = 32


def rounded(values: np.ndarray, digits: int) -> list[float]:
    """``[round(v, digits) for v in values]``, by array (see :func:`rounded_array`)."""
    return rounded_array(values, digits).tolist()


def rounded_array(values: np.ndarray, digits: int) -> np.ndarray:
    """``round(v, digits)`` of each of ``values`` (float64, same shape), by array:
    ``np.round`` (scale, round half to even, unscale) agrees with Python's correctly rounded
    ``round`` except where the scaled value is not exact and lies next to a half; those few
    are rounded by Python."""
    values = np.asarray(values, np.float64)
    scaled = values * 10.0 ** digits
    out = np.round(scaled) / 10.0 ** digits
    frac = np.abs(scaled - np.floor(scaled) - 0.5)
    with np.errstate(invalid="ignore"):
        doubt = np.flatnonzero((frac < 1e-6) | ~np.isfinite(scaled) | (np.abs(scaled) > 2.0**52))
    flat_in, flat_out = values.ravel(), out.reshape(-1)
    for i in doubt.tolist():
        flat_out[i] = round(float(flat_in[i]), digits)
    return out


def dumps(doc: Any, *, indent: bool = True) -> bytes:
    """The one JSON writer: UTF-8 bytes through orjson (indented by two spaces, or compact),
    with a final newline.  Floats are written in their shortest exact form, as ``json``
    writes them."""
    import orjson

    option = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY
    if indent:
        option |= orjson.OPT_INDENT_2
    return orjson.dumps(doc, option=option)


def _kind_columns(cols: dict[str, Any], t: "IntervalTable", order: np.ndarray,
                  keys: np.ndarray, n_cells: int) -> None:
    """The kind fields of the documents, as the columns :func:`iter_session_docs` reads
    (cell ``j = session * symbols + symbol``; gaps in ``order``, cell of each ``keys``):
    ``kind``, ``activity`` and ``share_missing`` on each range (in place), per cell the gaps
    and missing bars per kind (``kinds``: only the kinds present) and the data quality
    (``lost``, ``data_quality``)."""
    assert t.gap_kind is not None and t.gap_activity is not None and t.gap_share is not None
    kinds = t.gap_kind[order]
    names = kind_names(kinds)
    act = np.round(t.gap_activity[order], 4).tolist()
    share = t.gap_share[order]
    share_l = [None if v != v else v for v in np.round(share, 4).tolist()]
    for r, k, a, sh in zip(cols["ranges"], names, act, share_l):
        r["kind"] = k
        r["activity"] = a
        r["share_missing"] = sh
    counts = t.gap_count[order]
    per_kind = [(KINDS[i], np.bincount(keys, weights=kinds == i, minlength=n_cells)
                 .astype(np.int64).tolist(),
                 np.bincount(keys, weights=np.where(kinds == i, counts, 0), minlength=n_cells)
                 .astype(np.int64).tolist())
                for i in range(len(KINDS))]
    cells: list[dict[str, Any]] = [{}] * n_cells  # shared empty dict: never mutated
    for j in np.unique(keys).tolist():
        cells[j] = {name: {"gap_count": g[j], "missing_bars": m[j]}
                    for name, g, m in per_kind if g[j]}
    cols["kinds"] = cells
    lost = (t.lost if t.lost is not None else np.zeros(t.bars.shape, np.int64)).T.ravel()
    cols["lost"] = lost.tolist()
    cols["data_quality"] = data_quality(t.expected.T.ravel(), lost).tolist()


_NO_ANOMALY: dict[str, Any] = {"count": 0, "kinds": {}, "ranges": []}  # shared: never mutated


def _anomaly_sections(run: RunResult) -> tuple[str | None, dict[int, dict[str, Any]]]:
    """The ``anomalies`` sections of the documents: the interval that carries them (the
    base: the detectors look at base bars; None when they were off) and, per cell ``j =
    session * symbols + symbol`` that has any, ``count``, ``kinds`` (count per kind, only
    the kinds present) and ``ranges`` (``kind``, ``start_time``, ``end_time``, ``bar_count``,
    the evidence ``value``, ``baseline``, ``score``, ``ref_time`` when the kind has one,
    ``gap_kind`` for a ``filled`` run, and ``part``/``parts`` for one spanning sessions)."""
    a = run.anomalies
    if a is None:
        return None, {}
    if not len(a):
        return a.interval, {}
    n_s = len(run.symbols)
    tz = run.calendar.tz
    o = a.order()
    starts, ends = times_of_day(a.start[o], a.end[o], tz)
    cells: dict[int, dict[str, Any]] = {}
    for i, r in enumerate(o.tolist()):
        j = int(a.session[r]) * n_s + int(a.symbol[r])
        kind = ANOMALY_KINDS[int(a.kind[r])]
        rng: dict[str, Any] = {"kind": kind, "start_time": starts[i], "end_time": ends[i],
                               "bar_count": int(a.bar_count[r]),
                               "value": _num(a.value[r]), "baseline": _num(a.baseline[r]),
                               "score": _num(a.score[r])}
        if a.ref[r]:
            rng["ref_time"] = local_time(int(a.ref[r]), tz).isoformat()
        if a.gap_kind[r] >= 0:
            rng["gap_kind"] = KINDS[int(a.gap_kind[r])]
        if a.parts[r] > 1:
            rng["part"] = int(a.part[r])
            rng["parts"] = int(a.parts[r])
        cell = cells.get(j)
        if cell is None:
            cell = cells[j] = {"count": 0, "kinds": {}, "ranges": []}
        cell["count"] += 1
        cell["kinds"][kind] = cell["kinds"].get(kind, 0) + 1
        cell["ranges"].append(rng)
    return a.interval, cells


def _num(v: Any) -> float | None:
    """An evidence value for JSON: 6 significant digits, None for NaN (no such evidence)."""
    f = float(v)
    return None if f != f else float(f"{f:.6g}")
