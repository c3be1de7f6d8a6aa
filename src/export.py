"""Exports: one JSON document per session, the bars and the gaps as columnar datasets, written
as a whole and atomically; and the validation that reads an export back.

Layout of an export folder::

    OUT/manifest.json                            what the export holds (and the run's summary)
    OUT/sessions/<YYYY-MM-DD>.json               one document per session (documents.session_doc),
                                                 compact JSON
    OUT/bars/interval=<iv>/part-<NNNNN>.parquet  derived bars (and base bars on request)
    OUT/gaps/interval=<iv>/part-00000.parquet    every gap: symbol, session, start, end, bars
    OUT/anomalies/interval=<iv>/part-00000.parquet  every anomaly (issue 22): symbol, session,
                                                 kind, start, end, bar_count, evidence

The bars and gaps are datasets that polars, pyarrow, pandas and DuckDB read as one table
(``pl.scan_parquet("OUT/bars/**/*.parquet", hive_partitioning=True)``), with ``symbol`` and
``session`` columns.  The files are partitioned by interval, then by the engine's worker thread
(in worker processes, by the engine's partition of the input: a file, or a batch of symbols):
the engine hands a partition's bars to the writer while it holds them, a thread gathers them
into row groups of ``ROW_GROUP_ROWS`` rows and forgets them once written, so memory follows
the partition (and a row group per interval and thread), and the number of files follows the
threads (or the input's files), not symbols x sessions.  CSV instead of Parquet on request
(``part-*.csv``, the same columns; floats in their shortest exact form, so they read back bit
for bit).

An export is staged in a hidden folder beside ``OUT`` and swapped in when complete: a failure
or a kill part way leaves the previous export (or none), never a mix.  The swap is two renames;
a kill between them leaves the previous export at ``.OUT.previous-*``, which the next export
puts back before it starts.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import itertools
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from .arrowcols import dictionary, from_numpy, strings
from .bars import Bars
from .documents import dumps, start_session_docs
from .results import ANOMALY_KINDS, KINDS, RunResult, paused_gc

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from .engine import Engine

FORMATS = ("parquet", "csv")
MANIFEST = "manifest.json"
KIND = "sessiondata export"
BAR_COLUMNS = ["symbol", "session", "ts", "open", "high", "low", "close", "volume", "count",
               "coverage"]
GAP_COLUMNS = ["symbol", "session", "start", "end", "bar_count", "kind", "activity",
               "share_missing"]


def _arrow(full: bool = True) -> Any:
    """pyarrow with its Parquet module, and with ``full`` its CSV and compute modules too
    (the main job's Parquet export needs neither: ~0.1 s of its start-up)."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
        if full:
            import pyarrow.compute  # noqa: F401
            import pyarrow.csv  # noqa: F401
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise ImportError("exports need pyarrow: pip install pyarrow") from None
    return pyarrow


# -- files ----------------------------------------------------------------------------------


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def write_json(path: str | os.PathLike, obj: Any, *, indent: bool = True) -> Path:
    """Write a JSON document atomically through the one JSON writer."""
    return write_atomic(path, dumps(obj, indent=indent))


# -- the staged export ----------------------------------------------------------------------


def is_export(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a sessiondata export (its manifest says so)."""
    return _manifest(folder).get("kind") == KIND


def _leftovers(out: Path, what: str) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.{what}-*"))


def recover(out: str | os.PathLike) -> Path | None:
    """Put back an export that a kill between the two renames of a swap left aside (returns
    where it was), and remove staging folders that killed runs left."""
    out = Path(out)
    restored = None
    if not out.exists():
        for old in _leftovers(out, "previous"):
            if is_export(old):
                os.rename(old, out)
                restored = old
                break
    for stale in _leftovers(out, "staging") + _leftovers(out, "previous"):
        shutil.rmtree(stale, ignore_errors=True)
    return restored


@contextlib.contextmanager
def staged(out: str | os.PathLike, *, durable: bool = False,
           folder: str | os.PathLike | None = None, keep: bool = False) -> Iterator[Path]:
    """A folder to write an export into; swapped in for ``out`` when the block ends without
    an error, removed when it fails.  ``out`` must be absent, empty or an earlier export.
    ``folder`` (beside ``out``) is used instead of a new one, and ``keep`` leaves it in
    place when the block fails (a distributed run resumes from it).

    The swap is atomic against a failure or a kill of this process.  ``durable`` also
    flushes every file to disk before the swap, so that a crash of the machine cannot leave
    the new export half written behind its name (it costs a disk flush per file).
    """
    out = Path(out).resolve()   # "." is a folder with a name and a parent too
    out.parent.mkdir(parents=True, exist_ok=True)
    recover(out)
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"{out} exists and is not a folder")
        if not is_export(out) and any(out.iterdir()):
            raise ValueError(f"{out} exists and is not a sessiondata export (no {MANIFEST}); "
                             "choose another --out folder or empty it")
    if folder is None:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    else:
        tmp = Path(folder)
        tmp.mkdir(parents=True, exist_ok=True)
    try:
        yield tmp
        if durable:
            _fsync_tree(tmp)
        if out.exists() and not any(out.iterdir()):
            # An empty folder (perhaps the working one): filled in place, the manifest last,
            # so that until it lands the folder is no export at all.
            entries = sorted(tmp.iterdir(), key=lambda p: p.name == MANIFEST)
            for entry in entries:
                os.rename(entry, out / entry.name)
            tmp.rmdir()
        elif out.exists():
            old = out.parent / f".{out.name}.previous-{os.getpid()}"
            os.rename(out, old)
            try:
                os.rename(tmp, out)
            except BaseException:
                os.rename(old, out)   # the previous export goes back where it was
                raise
            _remove_previous(old, out)
        else:
            os.rename(tmp, out)
        _fsync_dir(out.parent)
    except BaseException:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        raise


class ExportLeftoverWarning(UserWarning):
    """The previous export could not be removed completely after the new one replaced it."""


def _remove_previous(old: Path, out: Path) -> None:
    """Remove the previous export, moved aside to ``old`` by the swap.  The new export is in
    place whatever happens here; what cannot be removed (a read-only tree in a writable
    parent, say) is left in ``old`` and said, never left behind without a word."""
    failed: list[tuple[str, BaseException]] = []

    def note(_function: Any, path: str, exc: Any) -> None:
        failed.append((path, exc[1] if isinstance(exc, tuple) else exc))

    if sys.version_info >= (3, 12):
        shutil.rmtree(old, onexc=note)
    else:  # pragma: no cover - depends on the interpreter
        shutil.rmtree(old, onerror=note)
    if failed or old.exists():
        left = sum(1 for _ in old.rglob("*")) if old.exists() else 0
        path, exc = failed[0] if failed else (str(old), OSError("still there"))
        warnings.warn(
            f"the new export is in {out}; the previous one could not be removed completely: "
            f"{left} entries are left in {old} ({type(exc).__name__} on {path}: {exc}); "
            "remove that folder by hand", ExportLeftoverWarning, stacklevel=4)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Flush every file of a staged export to disk before it is swapped in."""
    for folder, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                fd = os.open(os.path.join(folder, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        _fsync_dir(Path(folder))


# -- the bar dataset ------------------------------------------------------------------------


# Rows of one interval that a worker thread gathers before it writes them to its file, as
# one row group.  Each call of pyarrow's writer, and each row group, costs apart from its rows
# (pages, statistics, levels, the column chunks' metadata): a partition of one symbol-year
# makes ~19k 5m rows, ~1.8k 1h rows.  About 10 MiB of bars per interval and thread.
ROW_GROUP_ROWS = 1 << 17
# Rows that the threads together may hold unwritten (~80 MiB): beyond it, a thread writes
# what it holds at once, in smaller row groups, so that memory does not grow with the
# number of threads (on a machine of many cores) times the intervals.
PENDING_ROWS = 8 * ROW_GROUP_ROWS


def partition_file(name: str, symbols: list[str], fmt: str) -> str:
    """The name of a partition's file of one interval (per-partition mode, on disk or on a
    store): its name made safe and a digest of its symbols, so that a partition run again
    replaces its file and two partitions never share one."""
    digest = hashlib.sha1("\0".join(symbols).encode("utf-8")).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:40] or "part"
    return f"part-{slug}-{digest}.{fmt}"


def parquet_options() -> dict[str, Any]:
    """How the bar files are written (the threads' files and the partitions' alike)."""
    # Dictionary-encoding the float columns costs much of the write and saves little; the
    # symbol and the session repeat, so they are dictionaries.  The times are written as
    # deltas: within a session each symbol's bars are a fixed step apart, so the column
    # packs into a few bits a row with no hash table to build (a dictionary of them, as
    # polars writes, made the 2.7M derived bars ~7% larger and their write ~6% slower;
    # statistics of every column, as polars and before).
    return {"use_dictionary": ["symbol", "session"],
            "column_encoding": {"ts": "DELTA_BINARY_PACKED"}}


class _ThreadFiles:
    """One worker thread's files of the bar dataset (one per interval) and the bars it has
    gathered for each and not yet written."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.writers: dict[str, Any] = {}
        self.pending: dict[str, list[tuple[str, np.ndarray, Bars]]] = {}
        self.rows: dict[str, int] = {}


class BarDatasetWriter:
    """Writes bars into ``root/bars/interval=<iv>/`` as the engine makes them.

    Each of the engine's partitions gets a :class:`_BarPart` that collects its bars and, when
    the partition closes, hands them to its worker thread's file of each interval; the
    thread gathers them and writes ``row_group_rows`` rows or more at a time (a row group of
    a Parquet file, or rows of a CSV file), the rest when the writer closes (or sooner when
    the threads together hold more than ``pending_rows`` rows).  The files are as many as
    threads times intervals, whatever the number of symbols and sessions; within a file the
    rows are in the order the partitions closed on its thread, each partition's in the order
    the engine added them.  :meth:`close` writes what is gathered and finishes the files.

    With ``per_partition`` (worker processes, whose files no one could close at the end of
    the run) each partition writes its own file of each interval when it closes, named by the
    partition and its symbols and written through a temporary file and a rename: a partition
    run again (its worker was lost) replaces its file, never adds a second one.  The writer
    then pickles (a Dask task carries it) and :meth:`close` lists the files on disk.
    """

    def __init__(self, root: str | os.PathLike, fmt: str = "parquet", *,
                 per_partition: bool = False, row_group_rows: int = ROW_GROUP_ROWS,
                 pending_rows: int | None = None):
        if fmt not in FORMATS:
            raise ValueError(f"bar format must be one of {FORMATS}, got {fmt!r}")
        if row_group_rows < 1:
            raise ValueError(f"row_group_rows must be at least 1, got {row_group_rows}")
        _arrow(full=fmt == "csv")
        self.root = Path(root) / "bars"
        self.fmt = fmt
        self.per_partition = per_partition
        self.row_group_rows = int(row_group_rows)
        self.pending_rows = int(PENDING_ROWS if pending_rows is None else pending_rows)
        self._pending = 0   # rows the threads hold unwritten
        self._numbers = itertools.count()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._threads: list[_ThreadFiles] = []
        self._open: list[Any] = []
        self._closed = False
        self._finishing: threading.Thread | None = None   # done(): close() on a thread
        self._finish_error: BaseException | None = None
        self.files: list[Path] = []

    def part(self, name: str, *, separate: bool = False) -> "_BarPart":
        """A part of the bars: its own files in per-partition mode; else the calling
        thread's files, or with ``separate`` files of its own (the held-back first and last
        sessions, written after the middle ones, must not follow them in a file)."""
        return _BarPart(self, name if self.per_partition else None, separate)

    def __getstate__(self) -> dict[str, Any]:
        if not self.per_partition:
            raise TypeError("a BarDatasetWriter crosses to other processes in its "
                            "per_partition mode only (its files are open in this one)")
        return {"root": self.root, "fmt": self.fmt}

    def __setstate__(self, state: dict[str, Any]) -> None:
        BarDatasetWriter.__init__(self, state["root"].parent, state["fmt"], per_partition=True)

    def _write_part(self, interval: str, name: str, symbols: list[str],
                    table: "pa.Table") -> None:
        """A partition's file of one interval (per-partition mode), replaced atomically."""
        pa = _arrow(full=self.fmt == "csv")
        if not self.root.parent.is_dir():  # the run is over (a task left running by it)
            raise FileNotFoundError(errno.ENOENT, "the export's staging folder is gone",
                                    str(self.root.parent))
        folder = self.root / f"interval={interval}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / partition_file(name, symbols, self.fmt)
        tmp = folder / f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp"
        try:
            if self.fmt == "parquet":
                pa.parquet.write_table(table, tmp, **parquet_options())
            else:
                pa.csv.write_csv(table, tmp)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _append(self, interval: str, pieces: list[tuple[str, np.ndarray, Bars]]) -> None:
        """Gather a partition's ``pieces`` of ``interval`` for the calling thread's file,
        and write what is gathered once it reaches ``row_group_rows`` (everything the thread
        holds when the threads together hold more than ``pending_rows``)."""
        files = getattr(self._local, "files", None)
        if files is None:
            files = self._local.files = _ThreadFiles()
            with self._lock:
                self._threads.append(files)
        with files.lock:
            if self._closed:   # a partition still running when a failed run closed it
                raise RuntimeError("the bar dataset writer is closed")
            if interval not in files.writers:   # numbered as the threads' files begin
                files.writers[interval] = self._new_file(interval)
            n = sum(len(b) for _, _, b in pieces)
            files.pending.setdefault(interval, []).extend(pieces)
            files.rows[interval] = files.rows.get(interval, 0) + n
            with self._lock:
                self._pending += n
                over = self._pending > self.pending_rows
            if over:
                for name in list(files.pending):
                    self._flush(files, name)
            elif files.rows[interval] >= self.row_group_rows:
                self._flush(files, interval)

    def _flush(self, files: _ThreadFiles, interval: str) -> None:
        """Write the bars a thread gathered for ``interval`` (its lock held)."""
        pieces = files.pending.pop(interval, None)
        with self._lock:
            self._pending -= files.rows.pop(interval, 0)
        if pieces:
            files.writers[interval].write_table(bars_table(pieces, self.fmt == "csv"))

    def _flush_all(self, files: _ThreadFiles) -> None:
        """Write everything a thread gathered."""
        with files.lock:
            for interval in list(files.pending):
                self._flush(files, interval)

    def _append_separate(self, interval: str, table: "pa.Table") -> None:
        """Write ``table`` into a file of its own (closed with the others)."""
        self._new_file(interval).write_table(table)

    def _new_file(self, interval: str) -> Any:
        pa = _arrow(full=self.fmt == "csv")
        with self._lock:
            if self._closed:   # a partition still running when a failed run closed it
                raise RuntimeError("the bar dataset writer is closed")
            number = next(self._numbers)
        folder = self.root / f"interval={interval}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"part-{number:05d}.{self.fmt}"
        schema = _schema("bars")
        if self.fmt == "parquet":
            writer = pa.parquet.ParquetWriter(path, schema, **parquet_options())
        else:
            writer = pa.csv.CSVWriter(path, schema.set(0, pa.field("symbol", pa.string())))
        with self._lock:
            self._open.append(writer)
            self.files.append(path)
        return writer

    def idle(self) -> None:
        """The calling thread takes no more partition of this run (the others are still
        busy): write what it gathered now, beside their last partitions, rather than at
        :meth:`done` beside the engine's serial tail."""
        files = getattr(self._local, "files", None)
        if files is not None and not self.per_partition:
            self._flush_all(files)

    def done(self) -> None:
        """No more bars come (the engine's partitions are over): write what the threads
        gathered and finish the files now, on a thread of this writer's, while the engine
        assembles and classifies the run (pyarrow writes without the GIL); :meth:`close`
        waits for it and raises what it raised.  In per-partition mode nothing is held."""
        with self._lock:
            if self.per_partition or self._closed or self._finishing is not None:
                return
            self._finishing = threading.Thread(target=self._finish, daemon=True,
                                               name="sessiondata-bars-done")
        self._finishing.start()

    def _finish(self) -> None:
        try:
            self._close()
        except BaseException as exc:   # handed to close()
            self._finish_error = exc

    def close(self) -> None:
        """Write what the threads gathered and finish every file (the Parquet footers); after
        :meth:`done`, wait for its thread."""
        finishing = self._finishing
        if finishing is None:
            self._close()
            return
        finishing.join()
        if self._finish_error is not None:
            raise self._finish_error

    def _close(self) -> None:
        with self._lock:
            self._closed = True
            threads, self._threads = self._threads, []
            opened, self._open = self._open, []
        error: BaseException | None = None
        try:
            busy = [t for t in threads if t.pending]
            if len(busy) == 1:
                self._flush_all(busy[0])
            elif busy:   # pyarrow writes without the GIL: the threads' files side by side
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(len(busy),
                                        thread_name_prefix="sessiondata-bars") as pool:
                    list(pool.map(self._flush_all, busy))
        except BaseException as exc:
            error = exc
        for writer in opened:
            try:
                writer.close()
            except BaseException as exc:  # every file is closed; the first error is said
                error = error or exc
        if error is not None:
            raise error
        if self.per_partition:
            self.files = sorted(self.root.glob(f"interval=*/part-*.{self.fmt}"))


class _BarPart:
    def __init__(self, writer: BarDatasetWriter, name: str | None = None,
                 separate: bool = False):
        self.writer = writer
        self.name = name   # per-partition mode: the partition's own files
        self.separate = separate
        self.pieces: dict[str, list[tuple[str, np.ndarray, Bars]]] = {}

    def add(self, symbol: str, interval: str, sessions: np.ndarray, bars: Bars) -> None:
        self.pieces.setdefault(interval, []).append((symbol, sessions, bars))

    def close(self) -> None:
        pieces_of, self.pieces = self.pieces, {}
        if self.name is None and not self.separate:
            for interval, pieces in pieces_of.items():
                self.writer._append(interval, pieces)
            return
        symbols = sorted({s for pieces in pieces_of.values() for s, _, _ in pieces})
        for interval, pieces in pieces_of.items():
            table = bars_table(pieces, self.writer.fmt == "csv")
            if self.name is None:
                self.writer._append_separate(interval, table)
            else:
                self.writer._write_part(interval, self.name, symbols, table)


# bars_table: a piece shorter than this is joined with its neighbours into one chunk of up
# to _CHUNK_ROWS rows.
_SMALL_PIECE, _CHUNK_ROWS = 4096, 65536


def bars_table(pieces: list[tuple[str, np.ndarray, Bars]], plain: bool = False) -> "pa.Table":
    """One Arrow table of the bars of several symbols: ``symbol`` (dictionary, or plain
    strings with ``plain``), ``session`` (date), ``ts`` (timestamp, UTC), prices, volume,
    ``count`` and ``coverage`` (1 and 1.0 for base bars).

    A chunk per large piece over the bars' own arrays (no copy, no pandas: ``arrowcols``),
    small pieces joined into chunks, all chunks with one dictionary of symbols (a Parquet
    writer given a column whose dictionary changes from chunk to chunk writes the rest of
    its row group as plain strings)."""
    pa = _arrow(full=False)
    schema = _schema("bars")
    names = strings([s for s, _, _ in pieces])
    ts_type, f64, i64, i32 = schema.field("ts").type, pa.float64(), pa.int64(), pa.int32()

    def columns(i: int, sessions: np.ndarray, b: Bars) -> list[np.ndarray]:
        n = len(b)
        return [np.full(n, i, np.int32), _days(sessions), b.ts, b.open, b.high, b.low,
                b.close, b.volume,
                b.count if b.count is not None else np.ones(n, np.int64),
                b.coverage if b.coverage is not None else np.ones(n, np.float64)]

    def batch(cols: list[np.ndarray]) -> Any:
        codes, days, ts, o, h, lo, c, v, count, coverage = cols
        return pa.RecordBatch.from_arrays([
            pa.DictionaryArray.from_arrays(from_numpy(codes, i32), names),
            from_numpy(days, pa.date32()), from_numpy(ts, ts_type),
            from_numpy(o, f64), from_numpy(h, f64), from_numpy(lo, f64), from_numpy(c, f64),
            from_numpy(v, f64), from_numpy(count, i64), from_numpy(coverage, f64),
        ], schema=schema)

    def joined(group: list[list[np.ndarray]]) -> Any:
        return batch([np.concatenate(parts) for parts in zip(*group)]
                     if len(group) > 1 else group[0])

    # A large piece is a chunk over its own arrays (no copy); small ones (a held edge
    # session, a symbol's year of 1h bars) are joined into chunks of up to _CHUNK_ROWS
    # first: building a chunk costs ~0.1 ms whatever its length, more than copying a
    # few thousand rows.  The rows keep the pieces' order.
    batches: list[Any] = []
    group: list[list[np.ndarray]] = []
    rows = 0
    for i, (_, sessions, b) in enumerate(pieces):
        large = len(b) >= _SMALL_PIECE
        if group and (large or rows + len(b) > _CHUNK_ROWS):
            batches.append(joined(group))
            group, rows = [], 0
        if large:
            batches.append(batch(columns(i, sessions, b)))
        else:
            group.append(columns(i, sessions, b))
            rows += len(b)
    if group:
        batches.append(joined(group))
    table = pa.Table.from_batches(batches, schema=schema)
    if plain:
        table = table.set_column(0, "symbol", table.column("symbol").cast(pa.string()))
    return table


def _days(labels: np.ndarray) -> np.ndarray:
    """Session labels (datetime64) as int32 days since 1970-01-01 (Arrow's date32)."""
    return np.asarray(labels).astype("datetime64[D]", copy=False).view(np.int64).astype(np.int32)


def gaps_table(run: RunResult, interval: str) -> "pa.Table":
    """Every gap of an interval: symbol, session, start, end (exclusive), bar_count, and its
    kind with the inputs that explain it (``classify``: kind, activity, share_missing)."""
    pa = _arrow(full=False)
    t = run.intervals[interval]
    g = len(t.gap_count)
    kind = t.gap_kind if t.gap_kind is not None else np.zeros(g, np.int8)
    activity = t.gap_activity if t.gap_activity is not None else np.full(g, np.nan)
    share = t.gap_share if t.gap_share is not None else np.full(g, np.nan)
    unit = pa.timestamp("ns", tz="UTC")
    return pa.Table.from_arrays([
        dictionary(t.gap_symbol, run.symbols),
        from_numpy(_days(run.sessions[t.gap_session]), pa.date32()),
        from_numpy(t.gap_start, unit),
        from_numpy(t.gap_end, unit),
        from_numpy(t.gap_count, pa.int64()),
        dictionary(kind, KINDS),
        from_numpy(activity, pa.float64(), mask=np.isnan(activity)),
        from_numpy(share, pa.float64(), mask=np.isnan(share)),
    ], names=GAP_COLUMNS)


def anomalies_table(run: RunResult) -> "pa.Table":
    """Every anomaly of a run (issue 22), a row per symbol and session it touches: symbol,
    session, kind, start, end (exclusive), bar_count, the evidence (value, baseline, score,
    ref: see ``anomalies.EVIDENCE``), part/parts (an anomaly spanning sessions) and the gap
    kind of a ``filled`` run (null for the other kinds)."""
    pa = _arrow(full=False)
    a = run.anomalies
    assert a is not None
    unit = pa.timestamp("ns", tz="UTC")
    return pa.Table.from_arrays([
        dictionary(a.symbol, run.symbols),
        from_numpy(_days(run.sessions[a.session]), pa.date32()),
        dictionary(a.kind, ANOMALY_KINDS),
        from_numpy(a.start, unit), from_numpy(a.end, unit),
        from_numpy(a.bar_count, pa.int64()),
        from_numpy(a.value, pa.float64()),
        from_numpy(a.baseline, pa.float64()),
        from_numpy(a.score, pa.float64()),
        from_numpy(a.ref, unit, mask=np.asarray(a.ref) == 0),
        from_numpy(a.part, pa.int64()), from_numpy(a.parts, pa.int64()),
        dictionary(a.gap_kind, KINDS, mask=np.asarray(a.gap_kind) < 0),
    ], names=["symbol", "session", "kind", "start", "end", "bar_count", "value", "baseline",
              "score", "ref", "part", "parts", "gap_kind"])


def _write_table(table: "pa.Table", gdir: Path, fmt: str, strings: tuple[str, ...]) -> None:
    """One dataset file (``part-00000``) of a table; dictionary columns as plain text in
    CSV."""
    pa = _arrow(full=fmt == "csv")
    gdir.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pa.parquet.write_table(table, gdir / "part-00000.parquet",
                               use_dictionary=["symbol", "session"])
        return
    for name in strings:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, table.column(name).cast(pa.string()))
    pa.csv.write_csv(table, gdir / "part-00000.csv")


# -- writing a run --------------------------------------------------------------------------


def write_run(run: RunResult, folder: str | os.PathLike, *, fmt: str = "parquet",
              bars: BarDatasetWriter | None = None,
              summary: dict[str, Any] | Callable[[RunResult], dict[str, Any]] | None = None,
              provenance: dict[str, Any] | None = None, workers: int = 1,
              docs: Callable[[RunResult, Path], None] | None = None) -> Path:
    """Write a run's session documents, gap dataset and manifest into ``folder`` (a staging
    folder: see :func:`staged`); ``bars`` is the writer the engine filled; ``workers`` - 1
    threads render and write the documents (``documents.start_session_docs``: compiled,
    without the GIL) while this thread makes ``summary(run)`` when it is a function and
    another writes the gap and anomaly datasets (``summary`` must only read the run), then
    writes documents too until none is left; or ``docs(run, folder)`` writes them
    (``DaskExecutor.write_docs``: on the workers)."""
    folder = Path(folder)
    sessions = folder / "sessions"
    sessions.mkdir(parents=True, exist_ok=True)
    if docs is not None:
        docs(run, sessions)
        wait: Callable[..., None] = lambda help=True: None
    else:
        with paused_gc():
            wait = start_session_docs(run, sessions, workers=workers)
    try:
        _write_rest(run, folder, fmt, bars, summary, provenance)
    except BaseException:
        with contextlib.suppress(Exception):
            wait(help=False)   # the documents' threads end before the staging folder goes
        raise
    with paused_gc():
        wait()
    return folder


def _write_rest(run: RunResult, folder: Path, fmt: str, bars: BarDatasetWriter | None,
                summary: dict[str, Any] | Callable[[RunResult], dict[str, Any]] | None,
                provenance: dict[str, Any] | None) -> None:
    """The gap and anomaly datasets and the manifest of :func:`write_run`."""
    if callable(summary):
        # The datasets are written on a thread while the summary is made here: pyarrow
        # encodes without the GIL, the summary is Python, and both only read the run.  A
        # summary that raises (a strict plausibility check) waits for the thread first.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="sessiondata-gaps") as pool:
            datasets = pool.submit(_write_datasets, run, folder, fmt)
            summary = summary(run)
            datasets.result()
    else:
        _write_datasets(run, folder, fmt)
    manifest = {
        "kind": KIND,
        "format": fmt,
        "calendar": run.calendar.name,
        "base_interval": run.base,
        "derived_intervals": list(run.derived),
        "intervals_with_bars": sorted({p.parent.name.split("=", 1)[1]
                                       for p in (bars.files if bars is not None else [])}),
        "sessions": [str(s) for s in run.sessions],
        "symbols": list(run.symbols),
        "summary": summary or {},
    }
    if run.anomalies is not None:
        manifest["anomalies"] = {"interval": run.anomalies.interval,
                                 "kinds": run.anomalies.counts(),
                                 "params": run.anomalies.params}
    if provenance is not None:
        manifest["provenance"] = provenance
    (folder / MANIFEST).write_bytes(dumps(manifest))


def _write_datasets(run: RunResult, folder: Path, fmt: str) -> None:
    """The gap datasets (one per interval) and the anomaly dataset of :func:`write_run`."""
    pa = _arrow(full=fmt == "csv")
    for name in run.interval_names:
        gdir = folder / "gaps" / f"interval={name}"
        gdir.mkdir(parents=True, exist_ok=True)
        table = gaps_table(run, name)
        if fmt == "csv":
            table = table.set_column(0, "symbol", table.column("symbol").cast(pa.string()))
            i_kind = table.schema.get_field_index("kind")
            table = table.set_column(i_kind, "kind", table.column("kind").cast(pa.string()))
        if fmt == "parquet":
            pa.parquet.write_table(table, gdir / "part-00000.parquet",
                                   use_dictionary=["symbol", "session"])
        else:
            pa.csv.write_csv(table, gdir / "part-00000.csv")
    if run.anomalies is not None:  # the anomaly detectors' (issue 22): as the gaps
        adir = folder / "anomalies" / f"interval={run.anomalies.interval}"
        _write_table(anomalies_table(run), adir, fmt, ("symbol", "kind", "gap_kind"))


class Stage:
    """Where a run's export is written while it runs (:func:`run_export`): the bar ``writer``
    the engine fills, the local ``folder`` that takes the session documents, the gap
    dataset and the manifest, ``run(fn)`` that runs the engine (``fn``) and closes the
    writer, and how many ``workers`` build the documents.  Made by :func:`folder_stage` (an
    export on disk) or ``store_export.store_stage`` (on an object store); the context that
    yields it commits the export when its block ends without an error."""

    def __init__(self, writer: BarDatasetWriter, folder: Path,
                 run: Callable[[Callable[[], RunResult]], RunResult], workers: int = 1,
                 docs: Callable[[RunResult, Path], None] | None = None):
        self.writer = writer
        self.folder = folder
        self.run = run
        self.workers = workers
        self.docs = docs


@contextlib.contextmanager
def folder_stage(engine: "Engine", out: str | os.PathLike, fmt: str = "parquet", *,
                 durable: bool = False, resume: bool = False,
                 job: Any = None) -> Iterator[Stage]:
    """The :class:`Stage` of an export into the folder ``out``: a staging folder swapped in
    as a whole (:func:`staged`).  On an executor whose partitions run in other processes
    (``executor.remote``, ``distributed.DaskExecutor``) each partition writes its own files,
    the staging folder is the executor's (kept when the run fails) and ``resume`` reuses
    the partitions it finished when ``job`` (a description of the input and options) is
    unchanged."""
    executor: Any = engine.executor
    remote = bool(getattr(executor, "remote", False))
    if resume and not remote:
        raise ValueError("resume needs a run on a Dask cluster (its staging folder is kept "
                         "when it fails)")
    stage = executor.stage(out, resume=resume, job=job) if remote else None
    with staged(out, durable=durable, folder=stage, keep=remote) as tmp:
        writer = BarDatasetWriter(tmp, fmt, per_partition=remote)

        def run(engine_run: Callable[[], RunResult]) -> RunResult:
            attached = executor.attached(tmp) if remote else contextlib.nullcontext()
            try:
                with attached:
                    result = engine_run()
            finally:
                if not remote:  # this process's files: finished even when the run failed
                    writer.close()
            if remote:
                writer.close()
                executor.tidy(tmp)
            return result

        yield Stage(writer, tmp, run, 1 if remote else int(getattr(executor, "threads", 1)),
                    getattr(executor, "write_docs", None) if remote else None)


def run_export(engine: "Engine", sources: Any, out: str | os.PathLike, *,
               fmt: str = "parquet", dataset: str = "", span: tuple[int, int] | None = None,
               summary: Callable[[RunResult], dict[str, Any]] | None = None,
               durable: bool = False, resume: bool = False, job: Any = None,
               provenance: dict[str, Any] | None = None,
               stage: "contextlib.AbstractContextManager[Stage] | None" = None) -> RunResult:
    """Run ``engine`` over ``sources`` and export the run atomically into ``out``: the one
    export path, for threads and for Dask, into a folder or onto an object store.

    The engine hands each partition's bars to a :class:`BarDatasetWriter` (its sink) while
    the partition is held; then the session documents, the gap dataset and the manifest
    (with ``summary(result)``) of the whole run are written, and the export is committed as
    a whole.  ``stage`` says where: by default :func:`folder_stage` of ``out`` (with
    ``durable``, ``resume`` and ``job``); ``store_export.store_stage`` for an object store.
    ``provenance`` (``job.provenance``: version, options, inputs, library versions) goes
    into the manifest.
    """
    t0 = time.perf_counter()
    if stage is None:
        stage = folder_stage(engine, out, fmt, durable=durable, resume=resume, job=job)
    with stage as st:
        result = st.run(lambda: engine.run(sources, dataset=dataset, span=span,
                                           sink=st.writer))
        write_run(result, st.folder, fmt=fmt, bars=st.writer, summary=summary,
                  provenance=provenance, workers=st.workers, docs=st.docs)
    result.seconds = time.perf_counter() - t0
    return result


def export_run(run: RunResult, out: str | os.PathLike, *, fmt: str = "parquet",
               bars: dict[str, dict[str, Bars]] | None = None,
               summary: dict[str, Any] | None = None) -> Path:
    """Export a run that is already computed, with the bars given (per symbol, per interval:
    a live session's bars), atomically into ``out``."""
    with staged(out) as tmp:
        writer = BarDatasetWriter(tmp, fmt)
        if bars:
            part = writer.part("bars")
            k_opens = run.windows.session_open_ns
            for symbol, by_interval in bars.items():
                for interval, b in by_interval.items():
                    if len(b):
                        k = np.searchsorted(k_opens, b.ts, side="right") - 1
                        part.add(symbol, interval, run.sessions[np.maximum(k, 0)], b)
            part.close()
        writer.close()
        write_run(run, tmp, fmt=fmt, bars=writer, summary=summary)
    return Path(out)


# -- reading back ---------------------------------------------------------------------------


def read_dataset(folder: str | os.PathLike, what: str = "bars",
                 interval: str | None = None) -> "pa.Table":
    """The bars (or gaps) of an export as one Arrow table, with an ``interval`` column (or
    only the bars of ``interval``)."""
    pa = _arrow()
    import pyarrow.dataset as ds

    root = Path(folder) / what
    fmt = _manifest(folder).get("format", "parquet")
    schema = _schema(what)
    fields = list(schema) + [pa.field("interval", pa.string())]
    if not root.exists() or not any(root.glob(f"*/*.{fmt}")):
        empty = pa.schema(fields).empty_table()
        return empty.set_column(0, "symbol", empty.column("symbol").cast(pa.string()))
    csv_format = ds.CsvFileFormat(convert_options=pa.csv.ConvertOptions(column_types=schema))
    dataset = ds.dataset(root, format="parquet" if fmt == "parquet" else csv_format,
                         partitioning=ds.partitioning(pa.schema([("interval", pa.string())]),
                                                      flavor="hive"),
                         schema=pa.schema(fields))
    table = (dataset.to_table(filter=ds.field("interval") == interval) if interval is not None
             else dataset.to_table())
    # Symbols are dictionary-encoded on disk; handed out as plain strings (sortable, joinable).
    return table.set_column(0, "symbol", table.column("symbol").cast(pa.string()))


@functools.lru_cache(maxsize=None)
def _schema(what: str) -> "pa.Schema":
    pa = _arrow(full=False)
    ts = pa.timestamp("ns", tz="UTC")
    sym = pa.dictionary(pa.int32(), pa.string())
    if what == "bars":
        # Every bar has every field (a missing volume is NaN, not null): the columns say so,
        # and Parquet then writes no definition levels (a fifth of the bar files' encoding).
        return pa.schema([pa.field(name, type_, nullable=False) for name, type_ in (
            ("symbol", sym), ("session", pa.date32()), ("ts", ts),
            ("open", pa.float64()), ("high", pa.float64()), ("low", pa.float64()),
            ("close", pa.float64()), ("volume", pa.float64()), ("count", pa.int64()),
            ("coverage", pa.float64()))])
    if what == "anomalies":
        return pa.schema([("symbol", sym), ("session", pa.date32()), ("kind", sym),
                          ("start", ts), ("end", ts), ("bar_count", pa.int64()),
                          ("value", pa.float64()), ("baseline", pa.float64()),
                          ("score", pa.float64()), ("ref", ts), ("part", pa.int64()),
                          ("parts", pa.int64()), ("gap_kind", sym)])
    return pa.schema([("symbol", sym), ("session", pa.date32()), ("start", ts), ("end", ts),
                      ("bar_count", pa.int64()), ("kind", sym), ("activity", pa.float64()),
                      ("share_missing", pa.float64())])


def _manifest(folder: str | os.PathLike) -> dict[str, Any]:
    import orjson

    try:   # orjson: a run's manifest holds its summary (~1 MB at 100 symbols x a year)
        doc = orjson.loads((Path(folder) / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The manifest of an export (empty when there is none)."""
    return _manifest(folder)


def load_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The manifest of the export in ``folder``; a FileNotFoundError or ValueError naming
    the folder or the file when there is none, or it is not a sessiondata export's."""
    path = Path(folder) / MANIFEST
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise FileNotFoundError(f"{folder}: not a sessiondata export (no {MANIFEST})"
                                ) from None
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "sessiondata export":
        raise ValueError(f"{path}: not the manifest of a sessiondata export")
    return doc


def read_session_docs(folder: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The session documents of an export, in the manifest's order of sessions."""
    import orjson

    root = Path(folder) / "sessions"
    for label in _manifest(folder).get("sessions", []):
        yield orjson.loads((root / f"{label}.json").read_bytes())


def validate_export(folder: str | os.PathLike) -> list[str]:
    """Read an export back and check it: the manifest, every session document (schema, gap
    arithmetic, scores), the bar dataset (schema, bar invariants, order, and that each
    symbol's bars per session and interval are as many as its document says) and the gap
    dataset (the same gaps as the documents).

    Returns the problems found (empty when the export is sound).
    """
    folder = Path(folder)
    if not folder.is_dir():
        left = _leftovers(folder, "previous")
        hint = f"; an interrupted export left the previous one at {left[0]}" if left else ""
        return [f"{folder}: no such folder{hint}"]
    if not is_export(folder):
        return [f"{folder}: not a sessiondata export (no {MANIFEST} of kind {KIND!r})"]
    manifest = _manifest(folder)
    problems: list[str] = []
    docs: dict[str, dict[str, Any]] = {}
    listed = [str(label) for label in manifest.get("sessions", [])]
    for label in listed:
        path = folder / "sessions" / f"{label}.json"
        try:
            docs[label] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: cannot read: {exc}")
            continue
        if isinstance(docs[label], dict) and docs[label].get("session") != label:
            problems.append(f"{path}: the document is of session "
                            f"{docs[label].get('session')!r}, not {label}")
    for path in sorted((folder / "sessions").glob("*.json")):
        if path.stem not in listed:
            problems.append(f"{path}: a session document the manifest does not list (left by "
                            "another export?)")
    for label, doc in docs.items():
        problems += _check_doc(folder / "sessions" / f"{label}.json", doc)
    # What the documents say, per (interval, symbol, session): bars and gaps.
    said_bars: dict[tuple[str, str, str], int] = {}
    said_gaps: dict[tuple[str, str, str], int] = {}
    said_anomalies: dict[tuple[str, str, str], int] = {}
    for label, doc in docs.items():
        for symbol, entry in doc.get("symbols", {}).items():
            for name, iv in entry.get("intervals", {}).items():
                said_bars[(name, symbol, label)] = int(iv.get("bars", 0))
                said_gaps[(name, symbol, label)] = int(iv.get("gaps", {}).get("gap_count", 0))
                if isinstance(iv.get("anomalies"), dict):
                    said_anomalies[(name, symbol, label)] = int(iv["anomalies"].get("count", 0))
    try:
        bars = read_dataset(folder, "bars")
        gaps = read_dataset(folder, "gaps")
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a problem to report
        return problems + [f"{folder}: cannot read the datasets: {type(exc).__name__}: {exc}"]
    with_bars = set(manifest.get("intervals_with_bars", []))
    windows = {label: _windows_of(doc) for label, doc in docs.items()}
    problems += _check_bars(folder, bars, said_bars, with_bars, windows)
    problems += _check_file_order(folder, manifest.get("format", "parquet"))
    problems += _check_gap_rows(folder, gaps, said_gaps)
    if "anomalies" in manifest or (folder / "anomalies").exists():
        try:
            anomalies = read_dataset(folder, "anomalies")
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a problem to report
            return problems + [f"{folder / 'anomalies'}: cannot read the dataset: "
                               f"{type(exc).__name__}: {exc}"]
        problems += _check_anomaly_rows(folder, anomalies, said_anomalies, manifest)
    return problems


def _check_anomaly_rows(folder: Path, table: "pa.Table", said: dict[tuple[str, str, str], int],
                        manifest: dict[str, Any]) -> list[str]:
    """The anomaly dataset against the documents (rows per interval, symbol, session) and
    the manifest (anomalies per kind), and each row's arithmetic."""
    out = _rows_as_documents_say(folder, "anomalies", table, said)
    if not table.num_rows:
        rows: dict[str, list[Any]] = {c: [] for c in ("kind", "start", "end", "bar_count",
                                                        "part")}
    else:
        rows = {c: table.column(c).to_pylist() for c in ("kind", "start", "end", "bar_count",
                                                         "part")}
    for i, (kind, a, b, n) in enumerate(zip(rows["kind"], rows["start"], rows["end"],
                                            rows["bar_count"])):
        if kind not in ANOMALY_KINDS or n is None or n < 1 or a is None or b is None \
                or not a < b:
            out.append(f"{folder / 'anomalies'}: row {i}: malformed anomaly ({kind}, {a}, "
                       f"{b}, {n} bars)")
    said_kinds = (manifest.get("anomalies") or {}).get("kinds")
    if isinstance(said_kinds, dict):
        held_kinds = {k: 0 for k in ANOMALY_KINDS}
        for kind, part in zip(rows["kind"], rows["part"]):
            if kind in held_kinds and part == 0:
                held_kinds[kind] += 1
        for k in ANOMALY_KINDS:
            n = (said_kinds.get(k) or {}).get("count", 0)
            if n != held_kinds[k]:
                out.append(f"{folder / MANIFEST}: anomalies of kind {k}: the manifest says "
                           f"{n}, the dataset holds {held_kinds[k]}")
    return out


def _counts(table: "pa.Table") -> dict[tuple[str, str, str], int]:
    """Rows per (interval, symbol, session), counted by Arrow."""
    if not table.num_rows:
        return {}
    grouped = table.group_by(["interval", "symbol", "session"]).aggregate([([], "count_all")])
    return dict(zip(zip(grouped.column("interval").to_pylist(),
                        grouped.column("symbol").to_pylist(),
                        [str(d) for d in grouped.column("session").to_pylist()]),
                    grouped.column("count_all").to_pylist()))


def _codes(column: Any) -> np.ndarray:
    """Integer codes of a string column (equal strings, equal codes)."""
    pa = _arrow()
    encoded = pa.compute.dictionary_encode(column).combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)


def _check_bars(folder: Path, bars: "pa.Table", said: dict[tuple[str, str, str], int],
                with_bars: set[str],
                windows: dict[str, list[tuple[int, int]]]) -> list[str]:
    out: list[str] = []
    where = folder / "bars"
    if bars.num_rows:
        o, h, lo, c, v = (bars.column(n).to_numpy() for n in
                          ("open", "high", "low", "close", "volume"))
        cov = bars.column("coverage").to_numpy()
        cnt = bars.column("count").to_numpy()
        bad = ~(np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c))
        bad |= (h < np.maximum(o, c)) | (lo > np.minimum(o, c))
        bad |= (v < 0) | np.isinf(v)
        bad |= ~((cov > 0) & (cov <= 1.0)) | (cnt < 1)
        if bad.any():
            i = int(np.argmax(bad))
            out.append(f"{where}: {int(bad.sum())} bars break the bar invariants (first: "
                       f"{bars.slice(i, 1).to_pylist()[0]})")
        # Within (interval, symbol), no time twice.
        ts = bars.column("ts").cast("int64").to_numpy()
        keys = _codes(bars.column("interval")) * (bars.num_rows + 1) + \
            _codes(bars.column("symbol"))
        order = np.lexsort((ts, keys))
        same = keys[order][1:] == keys[order][:-1]
        if (same & (np.diff(ts[order]) <= 0)).any():
            out.append(f"{where}: duplicate bars (the same symbol, interval and time twice)")
        out += _check_sessions_of_bars(where, bars, ts, windows)
    held = _counts(bars)
    for key, n in sorted(said.items()):
        if key[0] not in with_bars:
            continue
        if held.get(key, 0) != n:
            out.append(f"{where}/interval={key[0]}: {key[1]} {key[2]}: {held.get(key, 0)} "
                       f"bars, sessions/{key[2]}.json says {n}")
    for key in sorted(set(held) - set(said)):
        out.append(f"{where}/interval={key[0]}: {key[1]} {key[2]}: {held[key]} bars of a "
                   "symbol or session no document lists")
    return out


def _windows_of(doc: Any) -> list[tuple[int, int]]:
    """The windows of a session document, as UTC nanoseconds."""
    import datetime as _dt

    out = []
    for w in doc.get("windows", []) if isinstance(doc, dict) else []:
        try:
            o = _dt.datetime.fromisoformat(w["open"])
            c = _dt.datetime.fromisoformat(w["close"])
        except (KeyError, TypeError, ValueError):
            continue
        epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
        out.append(((o - epoch) // _dt.timedelta(microseconds=1) * 1000,
                    (c - epoch) // _dt.timedelta(microseconds=1) * 1000))
    return out


def _check_sessions_of_bars(where: Path, bars: "pa.Table", ts: np.ndarray,
                            windows: dict[str, list[tuple[int, int]]]) -> list[str]:
    """Every bar lies in a window of the session its ``session`` column names."""
    spans = sorted((o, c, np.datetime64(label, "D").astype(np.int64))
                   for label, ws in windows.items() for o, c in ws)
    opens = np.array([w[0] for w in spans], np.int64)
    closes = np.array([w[1] for w in spans], np.int64)
    days = np.array([w[2] for w in spans], np.int64)
    session = bars.column("session").cast("int32").to_numpy(zero_copy_only=False)
    w = np.searchsorted(opens, ts, side="right") - 1
    ok = w >= 0
    wi = np.maximum(w, 0)
    ok &= (ts < closes[wi]) & (days[wi] == session) if len(spans) else np.zeros(len(ts), bool)
    bad = ~ok
    if not bad.any():
        return []
    i = int(np.argmax(bad))
    return [f"{where}: {int(bad.sum())} bars lie outside the session their session column "
            f"names (first: {bars.slice(i, 1).to_pylist()[0]})"]


def _check_file_order(folder: Path, fmt: str) -> list[str]:
    """Within each file of the bar dataset, a symbol's bars come in time order."""
    pa = _arrow()
    out = []
    for path in sorted((folder / "bars").glob(f"*/*.{fmt}")):
        if fmt == "parquet":
            table = pa.parquet.read_table(path, columns=["symbol", "ts"])
        else:
            table = pa.csv.read_csv(path, convert_options=pa.csv.ConvertOptions(
                include_columns=["symbol", "ts"],
                column_types={"ts": pa.timestamp("ns", tz="UTC")}))
        codes = _codes(table.column("symbol").cast(pa.string()))
        ts = table.column("ts").cast("int64").to_numpy()
        same = codes[1:] == codes[:-1]
        back = np.flatnonzero(same & (np.diff(ts) <= 0))
        if len(back):
            symbol = table.column("symbol").cast(pa.string())[int(back[0]) + 1].as_py()
            out.append(f"{path}, row {int(back[0]) + 1}: {symbol}'s bars are out of time "
                       "order")
    return out


def _check_gap_rows(folder: Path, gaps: "pa.Table",
                    said: dict[tuple[str, str, str], int]) -> list[str]:
    return _rows_as_documents_say(folder, "gaps", gaps, said)


def _rows_as_documents_say(folder: Path, what: str, table: "pa.Table",
                           said: dict[tuple[str, str, str], int]) -> list[str]:
    """The rows of dataset ``what`` per (interval, symbol, session) against the counts the
    session documents give."""
    out: list[str] = []
    held = _counts(table)
    for key in sorted(set(held) | {k for k, n in said.items() if n}):
        if held.get(key, 0) != said.get(key, 0):
            out.append(f"{folder / what}/interval={key[0]}: {key[1]} {key[2]}: "
                       f"{held.get(key, 0)} {what}, the session document says "
                       f"{said.get(key, 0)}")
    return out


def _check_doc(path: Path, doc: Any) -> list[str]:
    problems = []
    if not isinstance(doc, dict):
        return [f"{path}: not a JSON object"]
    for key in ("session", "calendar", "timezone", "windows", "symbols", "unknown_bars"):
        if key not in doc:
            problems.append(f"{path}: missing key {key!r}")
    for symbol, entry in doc.get("symbols", {}).items():
        where = f"{path}: {symbol}"
        for name, iv in entry.get("intervals", {}).items():
            problems += _check_gaps(f"{where} {name}", iv.get("gaps"))
            if "anomalies" in iv:
                problems += _check_anomalies(f"{where} {name}", iv["anomalies"])
            q = iv.get("quality")
            if q is None:
                continue
            if not 0.0 <= q.get("score", -1) <= 100.0 + 1e-9:
                problems.append(f"{where} {name}: score {q.get('score')} out of [0, 100]")
            if q.get("expected", 0) != q.get("present", 0) + q.get("missing", 0):
                problems.append(f"{where} {name}: expected != present + missing")
            if iv.get("bars", 0) > q.get("expected", 0):
                problems.append(f"{where} {name}: {iv.get('bars')} bars, more than the "
                                f"{q.get('expected')} expected")
    return problems


def _check_gaps(where: str, gaps: Any) -> list[str]:
    if not isinstance(gaps, dict):
        return [f"{where}: no gaps object"]
    out = []
    ranges = gaps.get("ranges", [])
    if gaps.get("gap_count") != len(ranges):
        out.append(f"{where}: gap_count {gaps.get('gap_count')} != {len(ranges)} ranges")
    if gaps.get("missing_bars") != sum(r.get("bar_count", 0) for r in ranges):
        out.append(f"{where}: missing_bars does not add up")
    for r in ranges:
        if not {"start_time", "end_time", "bar_count"} <= set(r) or r["bar_count"] < 1:
            out.append(f"{where}: malformed range {r}")
    kinds = gaps.get("kinds")
    if kinds is not None:  # the gap kinds (classify.py): counts per kind of the ranges' kinds
        said: dict[str, list[int]] = {}
        for r in ranges:
            c = said.setdefault(str(r.get("kind")), [0, 0])
            c[0] += 1
            c[1] += int(r.get("bar_count", 0))
        held = {k: [v.get("gap_count"), v.get("missing_bars")] for k, v in kinds.items()}
        if said != held:
            out.append(f"{where}: gap counts per kind {held} != the ranges' kinds {said}")
    return out


def _check_anomalies(where: str, section: Any) -> list[str]:
    """A document's ``anomalies`` section: ``count`` and ``kinds`` agree with the ranges,
    every range well formed."""
    if not isinstance(section, dict) or not isinstance(section.get("ranges"), list):
        return [f"{where}: malformed anomalies section"]
    out = []
    ranges = section["ranges"]
    if section.get("count") != len(ranges):
        out.append(f"{where}: anomalies count {section.get('count')} != {len(ranges)} ranges")
    said: dict[str, int] = {}
    for r in ranges:
        if not isinstance(r, dict) or r.get("kind") not in ANOMALY_KINDS \
                or not {"start_time", "end_time", "bar_count"} <= set(r) \
                or not isinstance(r["bar_count"], int) or r["bar_count"] < 1:
            out.append(f"{where}: malformed anomaly range {r}")
            continue
        said[r["kind"]] = said.get(r["kind"], 0) + 1
    if section.get("kinds") != said:
        out.append(f"{where}: anomalies per kind {section.get('kinds')} != the ranges' kinds "
                   f"{said}")
    return out
