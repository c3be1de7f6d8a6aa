"""The session documents: one JSON document per session, built from the model's columns.

Reads :class:`~sessiondata.results.RunResult` (never the reverse): every number of a document
is taken from lists made once per interval and column, every gap range is made once, so a
year of 500 symbols is built without a Python object per bar.  :func:`dumps` is the one JSON
writer (orjson).  The schema is ``SessionData.to_json``'s; see DESIGN.md, "JSON export".
"""

from __future__ import annotations

import os
import traceback
import warnings
from pathlib import Path
from itertools import chain
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
    times_of_day,
)

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
    """The columns of a run's documents, laid out once (before the documents are shared out
    among processes): per interval, lists in cell order ``j = session * symbols + symbol``
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

def _texts(values: Sequence[Any]) -> list[str]:
    """Each value of a flat list of numbers, booleans and None as orjson writes it inside a
    document: one :func:`dumps` of the list, split at its commas (none occurs inside such a
    value)."""
    if not len(values):
        return []
    return _dump(values)[1:-1].split(",")


def _dump(value: Any) -> str:
    """``value`` as compact JSON text (no final newline)."""
    return dumps(value, indent=False)[:-1].decode()


_chain = chain.from_iterable


def _format(pattern: str, cols: Sequence[Sequence[str]]) -> list[str]:
    """``[pattern % row for row in zip(*cols)]``, by one ``%`` over all the rows."""
    n = len(cols[0]) if cols else 0
    if not n:
        return []
    return ((pattern + "\x1f") * n % tuple(_chain(zip(*cols)))).split("\x1f")[:-1]


def _doc_writer(run: RunResult, k0: int = 0,
                k1: int | None = None) -> Callable[[int], tuple[str, bytes]]:
    """A function that makes the compact JSON text of session ``k`` (``k0 <= k < k1``)'s
    document, from columns laid out for those sessions only (each process that writes
    documents lays out its own share of the sessions): the bytes
    ``dumps(make(k), indent=False)`` gives for :func:`_doc_maker`'s ``make``, from the same
    model columns but without a dict per (symbol, session, interval).

    Each symbol's part of a document has the same shape in every session (its intervals,
    which are scored, which carry kinds or anomalies), so its text is made once here as a
    ``%`` template; a session's document is then one ``%`` of the templates of its symbols
    over its fields, each field's text made by orjson for the whole session at once
    (:func:`_texts`): the per-value work is C.  ``tests/test_documents_text.py`` holds the
    two paths equal."""
    n_s = len(run.symbols)
    k1 = run.windows.n_sessions if k1 is None else k1
    n_k = k1 - k0
    n_cells = n_s * n_k
    tz = run.calendar.tz
    ks = slice(k0, k1)
    # -- fields: per cell (j = (k - k0) * n_s + s), a list whose session slice is turned into text
    static: dict[Any, list] = {}      # field -> per-cell values (text made per session)
    ready: dict[Any, list[str]] = {}  # field -> per-cell text (mostly a default)
    ranges_of: dict[str, tuple[list[int], list[str]]] = {}
    kinds_of: dict[str, tuple[list[int], list[str]]] = {}
    rejected = ["{}"] * n_cells
    for (s, k), reasons in (run.rejected or {}).items():
        if reasons and k0 <= k < k1:
            rejected[(k - k0) * n_s + s] = _dump(reasons)
    ready["rejected"] = rejected
    static["loaded"] = run.loaded[:, ks].T.ravel().tolist()
    scored_of: dict[str, list[bool]] = {}
    for name, t in run.intervals.items():
        order = np.lexsort((t.gap_start, t.gap_symbol, t.gap_session))
        if k0 > 0 or k1 < run.windows.n_sessions:  # the gaps of these sessions
            g_k = t.gap_session[order]
            order = order[int(np.searchsorted(g_k, k0)):int(np.searchsorted(g_k, k1))]
        g_start, g_end, g_count = t.gap_start[order], t.gap_end[order], t.gap_count[order]
        keys = (t.gap_session[order] - k0) * n_s + t.gap_symbol[order]
        starts, ends = times_of_day(g_start, g_end, tz)
        e = t.expected[:, ks].T.ravel()
        cov = t.covered[:, ks].T.ravel()
        present = t.present[:, ks].T.ravel()
        offsets = np.searchsorted(keys, np.arange(n_cells + 1))
        static[name, "bars"] = t.bars[:, ks].T.ravel().tolist()
        static[name, "expected"] = e.tolist()
        static[name, "present"] = present.tolist()
        static[name, "missing_q"] = (e - present).tolist()
        static[name, "partial"] = t.partial[:, ks].T.ravel().tolist()
        static[name, "coverage"] = rounded(cov, 6)
        static[name, "score"] = rounded(quality_score(cov, e), 4)
        static[name, "gap_count"] = np.diff(offsets).tolist()
        static[name, "missing"] = (np.bincount(keys, weights=g_count, minlength=n_cells)
                                   .astype(np.int64).tolist())
        cols: list[list] = [_texts(starts), _texts(ends), _texts(g_count.tolist())]
        pattern = '"start_time":%s,"end_time":%s,"bar_count":%s'
        if t.gap_kind is not None:
            assert t.gap_activity is not None and t.gap_share is not None
            kinds = t.gap_kind[order]
            share = np.round(t.gap_share[order], 4)
            cols += [[f'"{k}"' for k in kind_names(kinds)],
                     _texts(np.round(t.gap_activity[order], 4).tolist()),
                     _texts([None if v != v else v for v in share.tolist()])]
            pattern += ',"kind":%s,"activity":%s,"share_missing":%s'
            counts = t.gap_count[order]
            # Per cell, the gaps and missing bars of each kind present, in the kinds'
            # order: each (cell, kind) entry's text by one ``%``, grouped by cell.
            per_kind = np.stack([np.bincount(keys, weights=kinds == i, minlength=n_cells)
                                 for i in range(len(KINDS))], axis=1).astype(np.int64)
            miss = np.stack([np.bincount(keys, weights=np.where(kinds == i, counts, 0),
                                         minlength=n_cells)
                             for i in range(len(KINDS))], axis=1).astype(np.int64)
            cell, kind = np.nonzero(per_kind)
            names_k = [_dump(n) for n in KINDS]
            kcols = [[names_k[i] for i in kind.tolist()],
                     _texts(per_kind[cell, kind].tolist()), _texts(miss[cell, kind].tolist())]
            kinds_of[name] = (
                np.searchsorted(cell, np.arange(n_cells + 1)).tolist(),
                _format('%s:{"gap_count":%s,"missing_bars":%s}', kcols))
            lost = (t.lost[:, ks] if t.lost is not None
                    else np.zeros((n_s, n_k), np.int64)).T.ravel()
            static[name, "lost"] = lost.tolist()
            static[name, "data_quality"] = rounded(data_quality(e, lost), 4)
        # Every range's text (inside its braces) by one ``%`` over all of them.
        ranges_of[name] = (offsets.tolist(), _format(pattern, cols))
        scored_of[name] = t.scored.tolist()
    anomaly_iv, anomaly_cells = _anomaly_sections(run)
    anomalies_by_k: dict[int, dict[int, str]] = {}
    for j, a_cell in anomaly_cells.items():
        if not k0 <= j // n_s < k1:
            continue
        anomalies_by_k.setdefault(j // n_s, {})[j % n_s] = _dump(a_cell)
    no_anomaly = _dump(_NO_ANOMALY)
    s_open, s_close = run.windows.session_open_ns, run.windows.session_close_ns
    tails: dict[int, dict[int, str]] = {}
    late = run.since_ns[:, ks] > s_open[None, ks]
    early = run.until_ns[:, ks] < s_close[None, ks]
    for s, kk in zip(*np.nonzero(late | early)):
        s, kk = int(s), int(kk)
        k = kk + k0
        tail = ""
        if late[s, kk]:
            tail += f',"scored_from":{_dump(local_time(int(run.since_ns[s, k]), tz).isoformat())}'
        if early[s, kk]:
            tail += f',"scored_to":{_dump(local_time(int(run.until_ns[s, k]), tz).isoformat())}'
        tails.setdefault(k, {})[s] = tail

    # -- the template of each symbol's part and the fields it reads, in order
    def esc(text: str) -> str:
        return text.replace("%", "%%")

    templates: list[str] = []
    fields_of: list[tuple[Any, ...]] = []
    for s in range(n_s):
        key = _dump(run.symbols[s])
        tpl = esc(f'{key}:{{"symbol":{key},"base_interval":{_dump(run.base_of(s))},'
                  f'"derived_intervals":{_dump(list(run.derived_of(s)))},"is_loaded":')
        tpl += '%s,"rejected":%s,"intervals":{'
        fields: list[Any] = ["loaded", "rejected"]
        ivs = []
        for name in run.intervals_of(s):
            if not run.intervals[name].has[s]:
                continue
            iv = esc(_dump(name)) + ':{"bars":%s'
            fields.append((name, "bars"))
            if scored_of[name][s]:
                iv += (',"quality":{"score":%s,"expected":%s,"present":%s,"missing":%s,'
                       '"partial":%s,"coverage":%s,"rejected":%s')
                fields += [(name, f) for f in ("score", "expected", "present", "missing_q",
                                               "partial", "coverage")]
                fields.append("rejected")
                if name in kinds_of:
                    iv += ',"data_quality":%s,"lost":%s'
                    fields += [(name, "data_quality"), (name, "lost")]
                iv += "}"
            iv += ',"gaps":{"gap_count":%s,"missing_bars":%s,"ranges":%s'
            fields += [(name, "gap_count"), (name, "missing"), (name, "ranges")]
            if name in kinds_of:
                iv += ',"kinds":%s'
                fields.append((name, "kinds"))
            iv += "}"
            if name == anomaly_iv:
                iv += ',"anomalies":%s'
                fields.append("anomalies")
            ivs.append(iv + "}")
        templates.append(tpl + ",".join(ivs) + "}%s}")
        fields.append("tail")
        fields_of.append(tuple(fields))
    uniform = len(set(fields_of)) == 1
    cache: dict[tuple[int, ...], list[str]] = {}

    def session_field(f: Any, k: int, a: int, b: int) -> list[str]:
        """The text of field ``f`` of every symbol in session ``k`` (cells ``a:b``)."""
        if f in static:
            return _texts(static[f][a:b])
        if f in ready:
            return ready[f][a:b]
        if f == "tail" or f == "anomalies":
            over = (tails if f == "tail" else anomalies_by_k).get(k)
            out = [("" if f == "tail" else no_anomaly)] * n_s
            for s, text in (over or {}).items():
                out[s] = text
            return out
        name, what = f
        if what == "ranges":
            offsets, elems = ranges_of[name]
            return ["[{" + "},{".join(elems[offsets[j]:offsets[j + 1]]) + "}]"
                    if offsets[j + 1] > offsets[j] else "[]" for j in range(a, b)]
        offsets, elems = kinds_of[name]  # what == "kinds"
        return ["{" + ",".join(elems[offsets[j]:offsets[j + 1]]) + "}"
                if offsets[j + 1] > offsets[j] else "{}" for j in range(a, b)]

    def write(k: int) -> tuple[str, bytes]:
        sl = run.windows.session_slice(k)
        label = str(run.sessions[k])
        head = _dump(session_fields(label, run.windows.open_ns[sl], run.windows.close_ns[sl],
                                    run.calendar))
        members = tuple(np.flatnonzero(run.member[:, k]).tolist())
        tpl = cache.get(members)
        if tpl is None:
            # The fixed text between the fields: joined with them below, not parsed by a
            # ``%`` per session (no control character is in JSON text: \x01 marks ``%%``).
            joined = ",".join(templates[s] for s in members).replace("%%", "\x01")
            tpl = cache[members] = [t.replace("\x01", "%") for t in joined.split("%s")]
        a = (k - k0) * n_s
        needed = fields_of[0] if uniform else tuple(dict.fromkeys(
            f for s in members for f in fields_of[s]))
        texts = {f: session_field(f, k, a, a + n_s) for f in dict.fromkeys(needed)}
        if uniform:
            cols = [texts[f] for f in fields_of[0]]
            if len(members) < n_s:
                pick = members
                cols = [[c[s] for s in pick] for c in cols]
            values = list(_chain(zip(*cols)))
        else:
            values = [texts[f][s] for s in members for f in fields_of[s]]
        parts = [""] * (2 * len(values) + 1)
        parts[0::2] = tpl
        parts[1::2] = values
        symbols = "".join(parts) if members else ""
        doc = (f'{head[:-1]},"symbols":{{{symbols}}},'
               f'"unknown_bars":{_dump(run.unknown[k])}}}' + "\n")
        return label, doc.encode()

    return write


def iter_session_docs(run: RunResult,
                      sessions: Sequence[int] | None = None) -> Iterator[dict[str, Any]]:
    """The JSON documents of ``sessions`` (default: all), one at a time, built column by
    column (see :func:`_doc_maker`)."""
    make = _doc_maker(run)
    for k in (range(run.windows.n_sessions) if sessions is None else sessions):
        yield make(k)


def write_session_docs(run: RunResult, folder: Path, *, workers: int = 1) -> None:
    """Write every session's document as ``folder/<session>.json`` (compact JSON).

    With ``workers`` > 1 (and ``os.fork``), the sessions are shared out among forked
    processes that inherit the run (nothing is pickled); each lays out the columns of its
    own sessions and builds and writes their documents (:func:`_doc_writer`), in parallel:
    it is Python work under one GIL.  A worker that fails makes the call fail (its
    traceback is printed)."""
    start_session_docs(run, folder, workers=workers)()


def start_session_docs(run: RunResult, folder: Path, *,
                       workers: int = 1) -> Callable[[], None]:
    """Start writing the session documents (see :func:`write_session_docs`) and return the
    function that waits for them.  With ``workers`` > 1 (and ``os.fork``) every share of
    the sessions is written by a forked process and this one is free until it waits (the
    export writes its gap dataset, summary and manifest meanwhile); else the documents are
    written when it waits.  Waiting raises when a process failed (its traceback printed)."""
    n_k = run.windows.n_sessions
    workers = max(1, min(workers, n_k // MIN_SESSIONS_PER_WORKER))
    if workers == 1 or not hasattr(os, "fork"):
        return lambda: _write_docs(run, 0, n_k, folder)
    dumps({})  # orjson imported before the fork
    pids: list[int] = []
    try:
        for chunk in np.array_split(np.arange(n_k), workers):
            with warnings.catch_warnings():
                # Python 3.12 warns on fork() beside threads (pyarrow's idle pools here):
                # the children run only this module's Python, orjson and file writes.
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:  # pragma: no cover - the child's exit code is what the parent sees
                code = 1
                try:
                    _write_docs(run, int(chunk[0]), int(chunk[-1]) + 1, folder)
                    code = 0
                except BaseException:
                    traceback.print_exc()
                finally:
                    os._exit(code)
            pids.append(pid)
    except BaseException:
        _reap(pids)
        raise

    def wait() -> None:
        failed = _reap(pids)
        if failed:
            raise RuntimeError(f"{failed} of {workers} processes writing the session "
                               f"documents into {folder} failed (tracebacks above)")

    return wait


def _reap(pids: list[int]) -> int:
    """Wait for the processes ``pids`` (once); how many failed."""
    failed = 0
    while pids:
        _, status = os.waitpid(pids.pop(), 0)
        failed += os.waitstatus_to_exitcode(status) != 0
    return failed


MIN_SESSIONS_PER_WORKER = 32


def _write_docs(run: RunResult, k0: int, k1: int, folder: Path) -> None:
    write = _doc_writer(run, k0, k1)
    for k in range(k0, k1):
        # Compact: a session of 500 symbols is ~1.6 MB so, ~2.5x that indented
        # (`python -m json.tool` shows one indented).
        label, text = write(k)
        (folder / f"{label}.json").write_bytes(text)


def rounded(values: np.ndarray, digits: int) -> list[float]:
    """``[round(v, digits) for v in values]``, by array: ``np.round`` (scale, round half to
    even, unscale) agrees with Python's correctly rounded ``round`` except where the scaled
    value is not exact and lies next to a half; those few are rounded by Python."""
    values = np.asarray(values, np.float64)
    scaled = values * 10.0 ** digits
    out = np.round(scaled) / 10.0 ** digits
    frac = np.abs(scaled - np.floor(scaled) - 0.5)
    doubt = np.flatnonzero((frac < 1e-6) | ~np.isfinite(scaled) | (np.abs(scaled) > 2.0**52))
    result = out.tolist()
    for i in doubt.tolist():
        result[i] = round(float(values[i]), digits)
    return result


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
