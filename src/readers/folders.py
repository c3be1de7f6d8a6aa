"""Files and folders: which entries of a folder are data, reading several files ahead on
worker threads, and :func:`read_bars`, the entry point over all of them."""

from __future__ import annotations

import errno
import os
import stat
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

from .. import storage
from .base import (
    _kind, _open_binary, _random_access, _READ_ERRORS, _stem, _why, DATA_SUFFIXES, POLICIES,
    ReadError, ReadOptions, ReadWarning,
)
from .layout import _detect_layout
from .result import _Collector, ReadResult
from .csv_fast import _csv_plan, _read_csv_into
from .parquet import _read_parquet_into


# Files above this size are not read ahead: several would be held in memory at once.
_AHEAD_MAX_BYTES = 1 << 27


def _read_ahead(files: list[Path], fn, alone):
    """``fn(path)`` of each file, in order, computed a few files ahead on worker threads
    (pyarrow reads without the GIL); a file's error is raised when its turn comes.  Without
    workers to spare, or with a big file among them, ``alone(path)`` one at a time."""
    workers = max(1, min(os.cpu_count() or 1, 8))
    big = any(p.stat().st_size > _AHEAD_MAX_BYTES for p in files)
    if len(files) < 2 or workers < 2 or big:
        for path in files:
            yield alone(path)
        return
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sessiondata-read")
    try:
        ahead: list[Any] = [pool.submit(fn, path) for path in files[:workers + 1]]
        for k in range(len(files)):
            got = ahead[k].result()
            if k + workers + 1 < len(files):
                ahead.append(pool.submit(fn, files[k + workers + 1]))
            ahead[k] = None     # the table goes with the result once collected
            yield got
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _csv_plans(files: list[Path], opts: ReadOptions):
    """The plans of several CSV files, in order, prepared ahead (one pyarrow block per file:
    a file per core); a single or big file is cut in a block per core instead."""
    return _read_ahead(files, lambda p: _csv_plan(p, opts, False),
                       lambda p: _csv_plan(p, opts, True))


def _parquet_tables(files: list[Path], opts: ReadOptions, footers: Mapping[Any, Any]):
    """The needed columns of several Parquet files, read ahead, each with its opened file
    (``(ParquetFile, table)``: the reader uses both, the file is opened once); None for a
    file that is read where its turn comes (a big one, or one with anything wrong: its error
    is then raised there, naming the file)."""
    def read(path: Path):
        try:
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(_random_access(path), memory_map=True,
                                metadata=footers.get(path))
            if pf.metadata.num_rows > 64 * opts.chunk_rows:
                return None
            layout = _detect_layout(list(pf.schema_arrow.names), opts, str(path))
            return pf, pf.read(columns=list(dict.fromkeys(layout.needed)), use_threads=True)
        except Exception:  # noqa: BLE001 - read again where its turn comes, to say why
            return None

    return _read_ahead(files, read, lambda p: None)


def data_files(folder: str | os.PathLike, on_bad: str = "raise",
               unreadable: list | None = None, skipped: list | None = None,
               options: Mapping[str, Any] | None = None, *, filesystem: Any = None,
               storage_options: Any = None) -> list[Any]:
    """The data files of a folder (not its subfolders), sorted: CSV (``.csv``, ``.txt``,
    ``.tsv``, optionally ``.gz``/``.bz2``/``.xz``) and Parquet; hidden files are skipped.

    Files that are not bar data are skipped under either policy, each with a warning, and
    ``(path, why)`` is appended to ``skipped`` (when given): by name (``README``,
    ``LICENSE``, ``CHANGELOG`` ...) and, unless the read ``options`` name the columns
    (``columns``, ``header=False``, ``ts_column`` ...), by content: a text file
    whose first line is neither a header naming at least two of open, high, low and close
    (allowing a misspelling) nor a row of numbers (a file without a header).  A file that
    looks like bars but is broken is never skipped this way: the reader names its fault.

    An entry named like a data file that cannot be read (a broken symbolic link, a link
    loop, a file without read permission, something that is not a regular file) is never
    skipped silently: with ``on_bad="raise"`` it is a ReadError naming it; with ``"drop"``
    a warning names it and ``(path, why)`` is appended to ``unreadable`` (when given).

    A URL (``s3://bucket/prefix``, ...) or a path of ``filesystem`` lists a prefix of an
    object store (:mod:`sessiondata.storage`): its data files as ``storage.StoreFile``.
    """
    if on_bad not in POLICIES:
        raise ValueError(f"on_bad must be 'raise' or 'drop', got {on_bad!r}")
    if storage.is_url(folder) or filesystem is not None:
        if storage.is_remote(folder, filesystem):
            return _store_data_files(storage.entry(folder, filesystem, storage_options)[1])
        folder = storage.resolve(folder, filesystem)[1]
    folder = Path(folder)
    opts = dict(options or {})
    check_content = not (opts.get("columns") or opts.get("header") is False or
                         opts.get("ts_column") or opts.get("date_column") or
                         opts.get("time_column"))
    found = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or _kind(p) is None:
            continue
        why = _unreadable(p)
        if why is None:
            other = _not_bars(p, check_content)
            if other is None:
                found.append(p)
                continue
            warnings.warn(f"{p}: skipped, not bar data ({other})", ReadWarning, stacklevel=2)
            if skipped is not None:
                skipped.append((str(p), other))
        elif why == "":
            continue                        # a folder named like a data file
        elif on_bad == "raise":
            raise ReadError(str(p), None, f"cannot read: {why} (give --on-bad drop to skip "
                            "it with a warning)")
        else:
            warnings.warn(f"{p}: skipped, cannot read: {why}", ReadWarning, stacklevel=2)
            if unreadable is not None:
                unreadable.append((str(p), why))
    return found


# Names of the documents that travel with data (compared in lower case, without suffixes).
_DOC_NAMES = ("readme", "license", "licence", "changelog", "changes", "copying", "authors",
              "notice")
_PRICE_NAMES = ("open", "high", "low", "close")


def _not_bars(p: Path, check_content: bool) -> str | None:
    """Why a folder's data-named file is not bar data (None when it may be: the reader
    then decides)."""
    import difflib

    if _stem(p).lower() in _DOC_NAMES:
        return "a document, by its name"
    if not check_content or _kind(p) != "csv":
        return None
    try:
        with _open_binary(p) as f:
            head = f.read(1 << 16)
    except _READ_ERRORS:
        return None                         # damaged: the reader names the fault
    first = head.replace(b"\r", b"\n").split(b"\n", 1)[0].decode("utf-8", "replace")
    first = first.lstrip("\ufeff").strip()
    if not first:
        return None                         # empty: the reader says so
    delimiter = max(",;\t|", key=first.count)
    fields = [f.strip().strip('"').lower() for f in first.split(delimiter)]
    numeric = sum(bool(f) and (f[0].isdigit() or f[0] in "+-.") for f in fields)
    if len(fields) >= 4 and numeric >= len(fields) - 1:
        return None                         # a row of numbers: bars without a header
    prices = sum(bool(difflib.get_close_matches(f, _PRICE_NAMES, n=1, cutoff=0.7))
                 for f in fields)
    if prices >= 2:
        return None
    shown = first if len(first) <= 40 else first[:37] + "..."
    return f"its first line {shown!r} names no open, high, low or close column"


def _store_data_files(files: list) -> list:
    """The data files of a store's listing (no hidden ones; a store has no links or
    permissions per object to check)."""
    # StoreFile has the surface of Path that _kind reads (its name).
    return [f for f in files if not f.name.startswith(".") and _kind(f) is not None]


def _unreadable(p: Path) -> str | None:
    """Why a folder entry cannot be read as a file (None when it can; "" for a folder)."""
    try:
        st = p.stat()
    except OSError as exc:
        if p.is_symlink():
            if exc.errno == errno.ELOOP:
                return "a symbolic link loop"
            try:
                target = os.readlink(p)
            except OSError:
                target = "?"
            return f"a broken symbolic link (to {target})"
        return _why(exc)
    if stat.S_ISDIR(st.st_mode):
        return ""
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    try:
        with open(p, "rb"):
            pass
    except OSError as exc:
        return exc.strerror.lower() if exc.strerror else _why(exc)
    return None


def read_bars(paths: str | os.PathLike | Iterable[str | os.PathLike], *,
              format: str | None = None, filesystem: Any = None,
              storage_options: Any = None, footers: Mapping[Any, Any] | None = None,
              **options) -> ReadResult:
    """Read a file, a folder of files, or a list of either; one result over all of them.

    A symbol found in several files is joined in time order; overlapping files are an error
    (a duplicate or out-of-order timestamp, naming the line).

    Parameters
    ----------
    paths : path-like or iterable of path-like
    format : str, optional
        ``None``, ``"csv"`` or ``"parquet"``: CSV and Parquet files by their suffix.
        ``"lean"``, ``"databento"``, ``"binance"``: vendor files, read by
        :mod:`sessiondata.readers.vendor` (see there).
    filesystem : pyarrow.fs.FileSystem or fsspec file system, optional
        The file system of ``paths`` (else a URL such as ``s3://bucket/prefix`` names its
        own: :mod:`sessiondata.storage`); each file is opened from it where it is read.
    storage_options : mapping, optional
        Options of the store of a URL (endpoint, credentials, ...).
    footers : mapping, optional
        Footers of Parquet files already read (``parquet_footer``), by path: they are not
        read again.  Each must be the file's current footer (the caller checks that the
        file did not change since).
    **options
        The fields of :class:`ReadOptions`; ``symbol`` only with a single file.
    """
    paths = _as_list(paths)
    for given in paths:
        if filesystem is not None or isinstance(given, storage.StoreFile) or \
                storage.is_url(given):
            continue        # a store's object: no FIFO or permission bits to look at
        p = Path(given)
        why = _unreadable(p) if p.exists() or p.is_symlink() else None
        if why:         # a FIFO, a device, a file without permission: never read (nor block)
            raise ReadError(str(p), None, f"cannot read: {why}")
    if format is not None and str(format).lower() not in ("csv", "parquet"):
        from . import vendor

        if filesystem is not None or any(map(storage.is_remote, paths)):
            raise ValueError(f"format={format!r}: vendor files are read from this machine's "
                             "disk only, not from an object store")

        return vendor.read_format(paths, format, **options)
    opts = ReadOptions(**options).checked()
    files: list[Any] = []
    unreadable: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    for given in _as_list(paths):
        if isinstance(given, storage.StoreFile):
            files.append(given)
            continue
        if storage.is_url(given) or filesystem is not None:
            if storage.is_remote(given, filesystem):
                try:
                    one, listed = storage.entry(given, filesystem, storage_options)
                except storage.StorageError as exc:
                    raise ReadError(str(given), None, exc.reason) from None
                found = [one] if one is not None else _store_data_files(listed)
                if one is not None and _kind(one) is None:  # type: ignore[arg-type]
                    raise ReadError(str(one), None, "not a data file (expected "
                                    f"{', '.join(DATA_SUFFIXES)}, optionally compressed)")
                if not found:
                    raise ReadError(str(given), None, "no data files under the prefix "
                                    f"(looked for {', '.join(DATA_SUFFIXES)}, optionally "
                                    "compressed)")
                files.extend(found)
                continue
            given = storage.resolve(given, filesystem)[1]
        p = Path(given)
        if p.is_dir():
            found = data_files(p, opts.on_bad, unreadable, skipped, options)
            if not found and skipped and not unreadable:
                raise ReadError(str(p), None, "no bar data in the folder: "
                                + "; ".join(f"{Path(f).name}: {why}" for f, why in skipped[:3])
                                + ("" if len(skipped) <= 3 else f" (and {len(skipped) - 3} more)"))
            if not found and not unreadable:
                raise ReadError(str(p), None, "no data files in the folder (looked for "
                                f"{', '.join(DATA_SUFFIXES)}, optionally compressed)")
            files.extend(found)
        elif p.exists():
            if _kind(p) is None:
                raise ReadError(str(p), None, "not a data file (expected "
                                f"{', '.join(DATA_SUFFIXES)}, optionally compressed)")
            files.append(p)
        else:
            raise ReadError(str(p), None, "no such file or folder")
    if opts.symbol is not None and len(files) > 1:
        raise ValueError("symbol= names the symbol of a single file; these are "
                         f"{len(files)} files")
    collector = _Collector(opts)
    plans = _csv_plans([p for p in files if _kind(p) != "parquet"], opts)
    footers = footers or {}
    tables = _parquet_tables([p for p in files if _kind(p) == "parquet"], opts, footers)
    try:
        for path in files:
            if _kind(path) == "parquet":
                pf, table = next(tables) or (None, None)
                _read_parquet_into(path, opts, collector, table, footers.get(path), pf)
            else:
                _read_csv_into(path, opts, collector, next(plans))
    finally:
        plans.close()           # stops the workers when a file's error ends the read
        tables.close()
    result = collector.finish()
    if unreadable:
        result.unreadable.extend(unreadable)
        result.dropped["unreadable file"] += len(unreadable)
    if skipped:
        result.dropped["not a data file"] += len(skipped)
    return result


def _as_list(paths: Any) -> list[Any]:
    if isinstance(paths, (str, os.PathLike, storage.StoreFile)):
        return [paths]
    return list(paths)
