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


def _doc_maker(run: RunResult) -> Callable[[int], dict[str, Any]]:
    """A function that makes the document of a session ``k``, from columns laid out once
    here: every number is taken from lists made once per interval, every gap range is
    made once."""
    n_s, n_k = len(run.symbols), run.windows.n_sessions
    tz = run.calendar.tz
    # Every column is laid out session by session (cell j = k * n_s + s), the order in which
    # the documents read them: symbol by symbol inside a session, no stride through memory.
    cols: dict[str, dict[str, list]] = {}
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
    member = run.member
    loaded = run.loaded.T.tolist()       # [session][symbol]
    since = run.since_ns.T.tolist()
    until = run.until_ns.T.tolist()
    per_symbol = [(run.symbols[s], run.base_of(s), run.derived_of(s),
                   [(name, cols[name]) for name in run.intervals_of(s)
                    if cols[name]["has"][s]])
                  for s in range(n_s)]
    anomaly_iv, anomaly_cells = _anomaly_sections(run)
    s_open = run.windows.session_open_ns.tolist()
    s_close = run.windows.session_close_ns.tolist()

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

def iter_session_docs(run: RunResult,
                      sessions: Sequence[int] | None = None) -> Iterator[dict[str, Any]]:
    """The JSON documents of ``sessions`` (default: all), one at a time, built column by
    column (see :func:`_doc_maker`)."""
    make = _doc_maker(run)
    for k in (range(run.windows.n_sessions) if sessions is None else sessions):
        yield make(k)


def write_session_docs(run: RunResult, folder: Path, *, workers: int = 1) -> None:
    """Write every session's document as ``folder/<session>.json`` (compact JSON).

    The columns are laid out once, here; with ``workers`` > 1 (and ``os.fork``), the
    sessions are then shared out among forked processes that inherit the columns (nothing is
    pickled) and build and write their documents in parallel: building them is Python work
    under one GIL.  A worker that fails makes the call fail (its traceback is printed)."""
    make = _doc_maker(run)
    n_k = run.windows.n_sessions
    workers = max(1, min(workers, n_k // MIN_SESSIONS_PER_WORKER))
    if workers == 1 or not hasattr(os, "fork"):
        _write_docs(make, range(n_k), folder)
        return
    dumps({})  # orjson imported before the fork
    chunks = np.array_split(np.arange(n_k), workers)
    pids = []
    try:
        for chunk in chunks[1:]:
            with warnings.catch_warnings():
                # Python 3.12 warns on fork() beside threads (pyarrow's idle pools here):
                # the children run only this module's Python, orjson and file writes.
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:  # pragma: no cover - the child's exit code is what the parent sees
                code = 1
                try:
                    _write_docs(make, chunk.tolist(), folder)
                    code = 0
                except BaseException:
                    traceback.print_exc()
                finally:
                    os._exit(code)
            pids.append(pid)
        _write_docs(make, chunks[0].tolist(), folder)
    finally:
        failed = 0
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            failed += os.waitstatus_to_exitcode(status) != 0
    if failed:
        raise RuntimeError(f"{failed} of {workers} processes writing the session documents "
                           f"into {folder} failed (tracebacks above)")


MIN_SESSIONS_PER_WORKER = 32


def _write_docs(make: Callable[[int], dict[str, Any]], ks: Iterable[int],
                folder: Path) -> None:
    for k in ks:
        doc = make(k)
        # Compact: a session of 500 symbols is ~1.6 MB so, ~2.5x that indented
        # (`python -m json.tool` shows one indented).
        (folder / f"{doc['session']}.json").write_bytes(dumps(doc, indent=False))


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
