"""The main job from Python: ``sessiondata.run(data, calendar, ...)``, what ``sessiondata run``
does on the command line.

It reads the data (a file, a folder of files, a mapping of symbol to bars, or the embedded
sample), runs every session through the engine and, with ``out``, exports the run (session
documents, bar and gap datasets, manifest).  A folder of files with one symbol each is read a
file at a time by the engine's workers, so memory follows the largest file, not the folder.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import threading
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping


from . import readers, storage
from .bars import Bars
from .calendar import Calendar, WindowSpan
from .classify import ClassifyOptions
from .engine import Engine, Loaded, Source, SymbolEvent, ThreadExecutor
from .export import run_export
from .intervals import parse_interval
from .kernels import default_calendar
from .plausibility import Plausibility
from .results import RunResult

SYMBOL_COLUMNS = ("symbol", "ticker")


def run(data: Any = None, calendar: Calendar | None = None, *, base: str = "1m",
        derived: Iterable[str] = ("5m", "15m", "1h"), out: str | os.PathLike | None = None,
        fmt: str = "parquet", export_base: bool = False, on_bad: str = "raise",
        start: Any = None, end: Any = None, threads: int | None = None,
        events: Iterable[SymbolEvent] = (), read_options: Mapping[str, Any] | None = None,
        progress: Callable[[int, int], None] | None = None,
        classify: ClassifyOptions | None = None,
        summary: Callable[[RunResult], dict[str, Any]] | None = None,
        durable: bool = False, client: Any = None, resume: bool = False,
        strict: bool = False, plausibility: Plausibility | None = None,
        filesystem: Any = None, storage_options: Mapping[str, Any] | None = None,
        anomalies: Any = None, filled_as_missing: bool = False) -> RunResult:
    """Run every trading session of ``data`` and, with ``out``, export it.

    Parameters
    ----------
    data : path, DataFrame, mapping of symbol to Bars (or DataFrame), or None
        A CSV (plain or gzip) or Parquet file, a folder of them (one file per symbol, the
        symbol being the file's name, or files with a ``symbol``/``ticker`` column), a vendor
        file or folder (``read_options={"format": "lean"}``, ...), bars per symbol (``Bars``, or
        pandas/polars DataFrames: ``engine.as_bars``), a pandas or polars DataFrame read like
        a file (``readers.read_frame``: a symbol column, or ``read_options={"symbol": ...}``),
        or None for the embedded sample (its calendar by default, and its symbol events).
    calendar : Calendar, optional
        The trading calendar (default ``Calendar.always()``, or the sample's).
    base, derived : str, iterable of str
        The bars' interval and the intervals derived from it.
    out : path, optional
        The export folder; written as a whole, atomically (see ``export``).
    fmt : {"parquet", "csv"}
        The format of the bar and gap datasets.
    export_base : bool
        Also export the base bars (they are the input: off by default).
    on_bad : {"raise", "drop"}
        A bad row stops the run naming its file, line and fault, or is dropped and counted.
    start, end : optional
        The first and last session to run.
    threads : int, optional
        Worker threads (default: the cores; one for a folder of files under 256 KiB on
        average, whose work is mostly Python under the GIL: :func:`default_threads`).
    events : iterable of SymbolEvent
        Symbols added or removed inside sessions.
    read_options : mapping, optional
        Options of ``readers.read_bars`` (``tz``, ``stamp``, ``ts_format``, ``format``, ...).
    progress : callable, optional
        ``progress(symbols_done, bars_done)`` after each partition.
    classify : ClassifyOptions, optional
        Thresholds and halts of the gap kinds (``classify``; documented defaults).
    summary : callable, optional
        ``summary(result)`` is written into the export's manifest.
    durable : bool
        Flush every exported file to disk before the export is swapped in.
    client : distributed.Client, optional
        Run the partitions (a file each, or a symbol each of bars in memory) on the workers
        of a Dask cluster (``sessiondata.distributed``); ``out`` must then be a folder every
        worker can reach.  The result and the export are the same as on this machine.
    resume : bool
        With ``client`` and ``out``: continue a run of the same job that was interrupted,
        reusing the partitions it finished (else the run starts afresh).
    strict : bool
        Fail (``plausibility.PlausibilityError``, before anything is exported) when the
        files fit another time zone, stamp or base interval clearly better; else that is a
        ``PlausibilityWarning`` and the manifest's ``summary.plausibility`` (see
        ``sessiondata.plausibility``; files on this machine only, not under ``client``).
    plausibility : Plausibility, optional
        The check to feed (the caller reads its verdict); default: a new one.
    filesystem : pyarrow.fs.FileSystem or fsspec file system, optional
        The file system of ``data`` and ``out`` when they are paths of an object store;
        else URLs (``s3://bucket/prefix``, ``gs://``, ``az://``) name their own, with
        ``storage_options`` (endpoint, credentials, ...).  See ``sessiondata.storage``: on a
        Dask cluster the workers open their own files from the store and write their bars
        to it; an export on a store is committed by its manifest, written last.
    storage_options : mapping, optional
        Options of the store of a URL (``endpoint_url``, ``key``, ``secret``, ``region``...).
    anomalies : AnomalyParams, str or None
        The anomaly detectors (issue 22; ``docs/anomalies.md``): None or ``"all"`` for every
        kind with the documented thresholds, ``"none"`` to turn them off, kinds separated by
        commas (``"filled,spike"``), or an ``AnomalyParams`` with thresholds of your own.
    filled_as_missing : bool
        Score ``filled`` bars (synthetic fills) as missing in the base interval's
        completeness (default False).

    Returns
    -------
    RunResult
        The results model of the run.
    """
    if resume and (client is None or out is None):
        raise ValueError("resume continues an interrupted run on a Dask cluster: it needs "
                         "client= (--scheduler) and out=")
    options = dict(read_options or {})
    label = "<bars>"
    check: Plausibility | None = None
    if data is None:
        from . import sample

        calendar = calendar or sample.sample_calendar()
        smp = sample.generate(calendar=calendar)
        sources: list[Source] | Mapping[str, Bars] = dict(smp.bars)
        events = list(events) + smp.events
        label = "the embedded sample"
    elif isinstance(data, Mapping):
        sources = dict(data)
    elif _is_frame(data):
        calendar = default_calendar(calendar)
        sources = [_checked_source("<DataFrame>", lambda: readers.read_frame(
            data, interval=base, on_bad=on_bad, **options), calendar, base, on_bad)]
        label = "<DataFrame>"
    else:
        calendar = default_calendar(calendar)
        if client is None:
            check = plausibility or Plausibility(calendar, base, options, strict)
        probe = None
        if client is not None:
            def probe(fn: Callable[..., Any], files: list[Any], **kw: Any) -> list[Any]:
                # A header is read where the data is read: on a worker, not here.
                return list(client.gather(client.map(fn, files, pure=False, **kw)))
        sources = file_sources(data, calendar, base, on_bad, options, check,
                               filesystem=filesystem, storage_options=storage_options,
                               probe=probe)
        label = str(data)
    calendar = default_calendar(calendar)
    if client is not None:
        from . import distributed

        executor: Any = distributed.DaskExecutor(client)
        sources = distributed.partitions(sources)
    else:
        executor = ThreadExecutor(threads if threads is not None else default_threads(sources))
    engine = Engine(calendar, base=base, derived=derived, on_bad=on_bad, start=start, end=end,
                    events=events, export_base=export_base, classify=classify,
                    executor=executor, progress=progress,
                    anomalies=anomaly_params(anomalies), filled_as_missing=filled_as_missing)
    if check is not None:
        summary = _with_check(summary, check)
    if out is None:
        result = engine.run(sources, dataset=label)
        if check is not None:
            check.finish()
        return result
    origin = provenance(data, engine, fmt=fmt, read_options=options)
    if storage.is_url(out) or filesystem is not None:
        if storage.is_remote(out, filesystem):
            from . import store_export

            return store_export.run_export(
                engine, sources, out, fmt=fmt, dataset=label, summary=summary,
                resume=resume, filesystem=filesystem, storage_options=storage_options,
                job=store_export.job_token(data, engine, fmt=fmt, read_options=options,
                                           filesystem=filesystem,
                                           storage_options=storage_options),
                provenance=origin)
        out = storage.resolve(out, filesystem)[1]
    token = (distributed.job_token(data, engine, fmt=fmt, read_options=options)
             if client is not None else None)
    return run_export(engine, sources, out, fmt=fmt, dataset=label, summary=summary,
                      durable=durable, resume=resume, job=token, provenance=origin)


# Files smaller than this on average are run on one thread by default (see default_threads).
SMALL_FILE_BYTES = 256 * 1024


def default_threads(sources: Any) -> int | None:
    """The worker threads of a run that was not given ``threads``: one for a folder of small
    files (under ``SMALL_FILE_BYTES`` on average), else None (the cores).

    A small file's work is mostly Python under the GIL (its reader's and the engine's calls
    around small kernels, ~1.7 ms of CPU a file), so a second thread only contends for it:
    1000 Parquet files of 390 rows took 1.70-2.12 s on one thread and 1.95-2.38 s on two
    (CSV: 1.73-2.20 against 2.12-2.56 s); 200 files of 10,000 rows (~0.5 MB) the same on
    either; 100 files of 96,000 rows (4.7 MB) are faster on two."""
    if not isinstance(sources, list):
        return None
    sizes = [s.nbytes for s in sources if isinstance(s, Source) and s.nbytes is not None]
    if len(sizes) > 1 and sum(sizes) < SMALL_FILE_BYTES * len(sizes):
        return 1
    return None


def provenance(data: Any, engine: Engine, *, fmt: str,
               read_options: Mapping[str, Any]) -> dict[str, Any]:
    """Where an export came from, for its manifest: the sessiondata version, the run's
    options, the input files with their sizes and modification times (not a content hash:
    hashing would read every file a second time), and the versions of the libraries that
    move results (an upgrade of exchange_calendars moves holidays without a word)."""
    import platform
    from dataclasses import fields

    from . import __version__
    from .versions import installed_version as version

    c = engine.classify
    options: dict[str, Any] = {
        "calendar": engine.calendar.name,
        "base_interval": engine.base.name,
        "derived_intervals": [d.name for d in engine.derived],
        "on_bad": engine.on_bad,
        "start": None if engine.start is None else str(engine.start),
        "end": None if engine.end is None else str(engine.end),
        "format": fmt,
        "export_base": engine.export_base,
        "read_options": {k: (v if isinstance(v, (str, int, float, bool, type(None)))
                             else str(v)) for k, v in sorted(read_options.items())},
        "classify": {f.name: getattr(c, f.name) for f in fields(c) if f.name != "halts"},
        "halts": len(c.halts) if c.halts is not None else 0,
    }
    if data is None:
        inputs: dict[str, Any] = {"kind": "the embedded sample"}
    elif isinstance(data, Mapping):
        inputs = {"kind": "bars in memory", "symbols": len(data)}
    elif _is_frame(data):
        inputs = {"kind": "a DataFrame in memory", "rows": len(data)}
    elif storage.is_url(data):
        inputs = {"kind": "an object store", "url": str(data)}
    else:
        root = Path(data).resolve()
        paths = ([root] if root.is_file() else
                 sorted(p for p in root.rglob("*") if p.is_file()
                        and not any(part.startswith(".") for part in p.relative_to(root).parts)))
        files = []
        for p in paths:
            st = p.stat()
            files.append({"path": p.name if p == root else str(p.relative_to(root)),
                          "bytes": st.st_size,
                          "modified_ns": st.st_mtime_ns})
        inputs = {"kind": "files", "root": str(root),
                  "identity": "size and modification time (not a content hash)",
                  "files": files}
    return {
        "sessiondata": __version__,
        "python": platform.python_version(),
        "libraries": {name: version(name) for name in
                      ("exchange_calendars", "pyarrow", "numpy", "tzdata")},
        "options": options,
        "inputs": inputs,
    }


def _with_check(summary: Callable[[RunResult], dict[str, Any]] | None, check: Plausibility
                ) -> Callable[[RunResult], dict[str, Any]]:
    """The manifest's summary with the plausibility check's verdict; under ``strict`` an
    implausible run raises here, before the export is swapped in."""
    def document(result: RunResult) -> dict[str, Any]:
        doc = dict(summary(result)) if summary is not None else {}
        check.finish()
        doc["plausibility"] = check.to_json()
        return doc

    return document


def file_sources(data: str | os.PathLike, calendar: Calendar, base: str, on_bad: str,
                 options: dict[str, Any], check: Plausibility | None = None, *,
                 filesystem: Any = None, storage_options: Mapping[str, Any] | None = None,
                 probe: Callable[..., list[Any]] | None = None) -> list[Source]:
    """The partitions of a file or folder: a file each when each file holds one symbol (its
    name), else the whole input at once (files with a symbol column may share symbols).

    A URL or a path of ``filesystem`` is a file or prefix of an object store: it is listed
    here, and each partition opens its files where it runs; ``probe(fn, files, **kw)``
    computes ``fn`` of each file elsewhere (on the Dask workers), so that this process reads
    no data at all."""
    if storage.is_url(data) or filesystem is not None:
        if storage.is_remote(data, filesystem):
            return _store_sources(data, calendar, base, on_bad, options, check, filesystem,
                                  storage_options, probe)
        data = storage.resolve(data, filesystem)[1]
    path = Path(data)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    whole = [_source(path, calendar, base, on_bad, options, str(path), check)]
    if options.get("format") not in (None, "csv", "parquet") or not path.is_dir():
        return whole
    unreadable: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []       # not bar data (a README ...): warned, counted
    files = readers.data_files(path, on_bad, unreadable, skipped, options)
    if len(files) <= 1 or options.get("symbol_column") or options.get("symbol"):
        return whole
    footers: dict[Any, Any] = {}   # each Parquet file's footer, read once: probe and reader
    if any(_has_symbol_column(f, options, footers) for f in files):
        return whole
    shared = _SharedSpan()   # the calendar's windows laid out once for all the files
    sources = [_source(f, calendar, base, on_bad, options, f.name, check, footers.get(f),
                       shared) for f in files]
    if unreadable or skipped:  # said by a warning already; counted in the run's dropped rows
        counts = Counter({"unreadable file": len(unreadable), "not a data file": len(skipped)})
        counts = +counts
        sources.append(Source("unreadable", lambda: Loaded({}, None, counts)))
    return sources


def _store_sources(data: Any, calendar: Calendar, base: str, on_bad: str,
                   options: dict[str, Any], check: Plausibility | None, filesystem: Any,
                   storage_options: Mapping[str, Any] | None,
                   probe: Callable[..., list[Any]] | None) -> list[Source]:
    """:func:`file_sources` of a file or prefix of an object store (listed, not read)."""
    if options.get("format") not in (None, "csv", "parquet"):
        raise ValueError(f"{data}: vendor formats (format={options['format']!r}) are read "
                         "from this machine's disk only, not from an object store")
    one, _ = storage.entry(data, filesystem, storage_options)
    if one is not None:
        return [_source(one, calendar, base, on_bad, options, str(one), check)]
    files = readers.data_files(data, on_bad, filesystem=filesystem,
                               storage_options=storage_options)
    if not files:
        raise readers.ReadError(str(data), None, "no data files under the prefix (looked for "
                                f"{', '.join(readers.DATA_SUFFIXES)}, optionally compressed)")
    whole = [_source(files, calendar, base, on_bad, options, str(data), check)]
    if len(files) <= 1 or options.get("symbol_column") or options.get("symbol"):
        return whole
    has = (probe(_has_symbol_column, files, options=options) if probe is not None
           else [_has_symbol_column(f, options) for f in files])
    if any(has):
        return whole
    shared = _SharedSpan()
    return [_source(f, calendar, base, on_bad, options, f.name, check, shared=shared)
            for f in files]


def _is_frame(data: Any) -> bool:
    """Whether ``data`` is a pandas or polars DataFrame (without importing either)."""
    return (type(data).__name__ == "DataFrame"
            and type(data).__module__.split(".", 1)[0] in ("pandas", "polars"))


def _source(path: Any, calendar: Calendar, base: str, on_bad: str, options: dict[str, Any],
            name: str, check: Plausibility | None = None,
            footer: tuple[Any, Any] | None = None, shared: "_SharedSpan | None" = None) -> Source:
    def read() -> readers.ReadResult:
        # The footer the probe read, unless the file changed since (then read it again).
        known = ({path: footer[1]} if footer is not None and _identity(path) == footer[0]
                 else None)
        return readers.read_bars(path, interval=base, on_bad=on_bad, footers=known, **options)

    source = _checked_source(name, read, calendar, base, on_bad, check, shared)
    if isinstance(path, Path):
        with contextlib.suppress(OSError):
            source.nbytes = path.stat().st_size
    return source


def _checked_source(name: str, read: Callable[[], readers.ReadResult], calendar: Calendar,
                    base: str, on_bad: str, check: Plausibility | None = None,
                    shared: _SharedSpan | None = None) -> Source:
    """A partition whose ``read()`` gives a reader's result, checked here against the
    calendar and base interval (the engine does not check the bars again)."""
    def load() -> Loaded:
        result = read()
        # The windows of the file's range, laid out once: the plausibility check, the
        # session check and the engine cut theirs from these.
        span = _window_span(result, calendar, base, shared)
        if check is not None:
            check.observe(result, span=span)    # the whole file, before bars are set aside
        # Checked against this calendar and base: the engine does not check them again.
        try:
            result.check_sessions(calendar, base, on_bad, span=span)
        except ValueError as exc:
            if check is None:
                raise
            raise check.amend(exc) from None
        return Loaded(dict(result.bars), result.error, result.dropped,
                      result.outside_sessions, checked=True, rejected_rows=result.dropped_rows,
                      span=span)

    return Source(name, load)


class _SharedSpan:
    """The calendar's windows laid out once for the files of one run: each file's
    ``WindowSpan`` is cut from the widest laid out so far (the files of a folder mostly
    cover the same dates), which is laid out anew, over both, for a file that reaches beyond
    it by less than ``NEAR_NS`` (else over that file alone).  Shared by the partitions'
    threads; a process it is sent to (Dask) starts its own."""

    NEAR_NS = 31 * 86_400 * 1_000_000_000

    def __init__(self) -> None:
        self._span: WindowSpan | None = None
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_SharedSpan, ())

    def span(self, calendar: Calendar, lo: int, hi: int) -> WindowSpan:
        with self._lock:
            wide = self._span
            if wide is None or wide.calendar is not calendar or not (
                    wide.start_ns <= lo and hi <= wide.end_ns):
                if (wide is not None and wide.calendar is calendar
                        and lo - wide.end_ns <= self.NEAR_NS
                        and wide.start_ns - hi <= self.NEAR_NS):
                    lo_all, hi_all = min(lo, wide.start_ns), max(hi, wide.end_ns)
                else:
                    lo_all, hi_all = lo, hi
                wide = self._span = WindowSpan(calendar, lo_all, hi_all)
        return WindowSpan(calendar, lo, hi, within=wide)


def _window_span(result: readers.ReadResult, calendar: Calendar, base: str,
                 shared: _SharedSpan | None = None) -> WindowSpan | None:
    """The calendar's windows over every bar of a read, with the margin of a base interval
    on both sides (what ``ReadResult.check_sessions`` lays out for each symbol), cut from
    ``shared`` when given; None when there is no bar or the calendar cannot lay them out
    (each check then asks the calendar itself, and says what is wrong)."""
    firsts = [int(b.ts[0]) for b in result.bars.values() if len(b)]
    if not firsts:
        return None
    base_ns = parse_interval(base).ns
    lo = min(firsts) - base_ns
    hi = max(int(b.ts[-1]) for b in result.bars.values() if len(b)) + max(base_ns, 1)
    try:
        return WindowSpan(calendar, lo, hi) if shared is None else \
            shared.span(calendar, lo, hi)
    except (ValueError, OverflowError):
        return None


def _identity(path: Path) -> tuple[int, int] | None:
    """Size and modification time of a file on disk (None when it cannot be said)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _has_symbol_column(path: Any, options: Mapping[str, Any],
                       footers: dict[Any, Any] | None = None) -> bool:
    """Whether a data file names its symbols in a column (read from its header only).
    A Parquet file's footer goes into ``footers`` (with the file's size and modification
    time), so that its reader does not read it again."""
    names: list[str] = []
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            from .readers.parquet import parquet_footer

            # Size and time before the footer: a file replaced meanwhile is read afresh.
            ident = _identity(path) if footers is not None and isinstance(path, Path) else None
            names, footer = parquet_footer(path)
            if ident is not None and footers is not None:
                footers[path] = (ident, footer)
        else:
            if options.get("columns"):
                names = list(options["columns"])
            elif options.get("header", True):
                if not isinstance(path, Path):   # a file of an object store
                    with path.open_binary() as raw:
                        first = raw.readline().decode("utf-8", errors="replace")
                else:
                    opener = gzip.open if path.suffix == ".gz" else open
                    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
                        first = f.readline()
                delim = options.get("delimiter") or max(",;\t|", key=first.count)
                names = [n.strip().strip('"') for n in first.split(delim)]
    except (OSError, EOFError, zlib.error, ValueError, ImportError):
        return False  # the reader will say what is wrong with the file
    return any(n.lower() in SYMBOL_COLUMNS for n in names)


def anomaly_params(value: Any) -> Any:
    """The detectors' ``AnomalyParams`` of ``run(anomalies=...)``: None or ``"all"`` (every
    kind, default thresholds), ``"none"`` or ``""`` (off), kinds by commas, or the params."""
    from .anomalies import AnomalyParams

    if value is None:
        return AnomalyParams()
    if isinstance(value, AnomalyParams):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text == "all":
            return AnomalyParams()
        return AnomalyParams().replace(kinds=text)
    if isinstance(value, (list, tuple)):
        return AnomalyParams(kinds=tuple(value))
    raise TypeError("anomalies= takes None, 'all', 'none', kinds by commas or AnomalyParams, "
                    f"got {type(value).__name__}")
