"""Parquet files, column by column through pyarrow (no copy where the types allow)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..bars import PRICE_COLUMNS

from .base import (_arrow_numpy, _DAY_NS, _NS_MAX, _READ_ERRORS, _random_access, _stem, _UNIT_NS, _why,
                   ReadError, ReadOptions)
from .layout import _detect_layout
from .timeparse import (
    _arrow_i64, _arrow_ints, _parse_text_rows, _reasons_for, _scale_ns, _strip, _TimeParser,
)
from .result import _Collector, _symbol, ReadResult


def read_parquet(path: str | os.PathLike, **options) -> ReadResult:
    """Read bars from a Parquet file through pyarrow, a row group batch at a time.

    Options are those of :func:`read_csv` (``delimiter`` and ``encoding`` do not apply).
    The timestamp column may be a timestamp (with or without a time zone), an integer epoch
    or text; the price columns must be numeric.  Errors name the file and the row (1 is the
    first row of data).
    """
    opts = ReadOptions(**options).checked()
    collector = _Collector(opts)
    _read_parquet_into(Path(path), opts, collector)
    return collector.finish()


def parquet_footer(path: Any) -> tuple[list[str], Any]:
    """The column names and footer (``pyarrow.parquet.FileMetaData``) of a Parquet file,
    read from its footer only (pyarrow's errors are raised as they are: a caller that
    probes many files decides what a broken one means).

    A caller that reads the file later hands the footer to :func:`read_bars`
    (``footers=``), which then does not read and parse it a second time.
    """
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(_random_access(path), memory_map=True)
    try:
        return list(pf.schema_arrow.names), pf.metadata
    finally:
        pf.close()


def _read_parquet_into(path: Path, opts: ReadOptions, collector: _Collector,
                       table: Any = None, footer: Any = None, pf: Any = None) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - depends on the environment
        raise ReadError(str(path), None, "reading Parquet needs pyarrow, a dependency of "
                        "sessiondata: pip install --force-reinstall sessiondata") from None
    name = str(path)
    if pf is None:   # (else opened where ``table`` was read ahead)
        try:
            # ``footer``: the file's FileMetaData, already read by a probe of its columns.
            pf = pq.ParquetFile(_random_access(path), memory_map=True, metadata=footer)
        except (OSError, pa.ArrowException) as exc:
            raise ReadError(name, None, f"not a readable Parquet file: {exc}") from None
    try:
        _parquet_into(pf, path, opts, collector, table)
    except ReadError:
        raise
    except (pa.ArrowException, *_READ_ERRORS) as exc:
        raise ReadError(name, None, f"cannot read: {_why(exc)}") from None
    except (ValueError, TypeError, OverflowError, KeyError, IndexError) as exc:
        # Whatever goes wrong inside names the file (issue 11: every error while reading a
        # Parquet file does).
        raise ReadError(name, None, _why(exc)) from None


def _parquet_into(pf, path: Path, opts: ReadOptions, collector: _Collector,
                  prefetched: Any = None) -> None:
    import pyarrow as pa

    name = str(path)
    schema = pf.schema_arrow
    layout = _detect_layout(list(schema.names), opts, name)
    for role in PRICE_COLUMNS:
        if role not in layout.prices:
            continue
        col = layout.prices[role]
        typ = schema.field(col).type
        if not (pa.types.is_integer(typ) or pa.types.is_floating(typ)
                or pa.types.is_decimal(typ)):
            raise ReadError(name, None, f"wrong schema: column {col!r} is {typ}, expected a "
                            "number")
    for col in layout.time_columns:
        typ = schema.field(col).type
        if not (pa.types.is_timestamp(typ) or pa.types.is_integer(typ)
                or pa.types.is_floating(typ) or pa.types.is_string(typ)
                or pa.types.is_large_string(typ) or pa.types.is_date(typ)
                or pa.types.is_time(typ)):
            raise ReadError(name, None, f"wrong schema: column {col!r} is {typ}, expected a "
                            "timestamp, an epoch number or text")
    if layout.symbol is not None:
        typ = schema.field(layout.symbol).type
        if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)
                or pa.types.is_dictionary(typ)):
            raise ReadError(name, None, f"wrong schema: column {layout.symbol!r} is {typ}, "
                            "expected text")
    symbol = None if layout.symbol else (opts.symbol or _symbol(_stem(path), name, None, "row"))
    parser = _TimeParser(opts)
    source = collector.begin(name, "row", layout.has_volume)
    collector.result._time_fields[source] = ("parquet", tuple(layout.time_columns))
    collector.result._parsers[source] = parser
    if symbol is not None:
        collector.declare(symbol)
    # Column by column, all row groups at once (pyarrow reads them on its threads); a
    # float64, int64 or timestamp column without nulls in one chunk reaches NumPy without a
    # copy.  Very large files go in slices of row groups, to bound the memory.
    needed = list(dict.fromkeys(layout.needed))
    groups = list(range(pf.num_row_groups))
    offset = 0
    step = max(1, len(groups))
    if pf.metadata.num_rows > 4 * opts.chunk_rows * 16:
        per_group = max(1, pf.metadata.num_rows // max(1, len(groups)))
        step = max(1, (16 * opts.chunk_rows) // per_group)
    for k in range(0, max(1, len(groups)), step):
        part = groups[k:k + step]
        if prefetched is not None and step >= len(groups):
            table = prefetched          # read ahead on a worker thread
        elif part and step < len(groups):
            table = pf.read_row_groups(part, columns=needed, use_threads=True)
        else:
            table = pf.read(columns=needed, use_threads=True)
        n = table.num_rows
        rows = np.arange(offset + 1, offset + n + 1, dtype=np.int64)
        offset += n
        columns = {c: _one_chunk(table.column(c)) for c in needed}
        _arrow_chunk(columns, rows, layout, symbol, parser, collector, source, name)
    collector.commit()


def _one_chunk(arr):
    """A chunked arrow column as one array (no copy when it is one chunk already)."""
    if hasattr(arr, "num_chunks"):
        if arr.num_chunks == 1:
            return arr.chunk(0)
        return arr.combine_chunks()
    return arr


def _pc():
    """pyarrow.compute, imported for a column that needs a cast only (~0.1 s of start-up)."""
    import pyarrow.compute

    return pyarrow.compute


def _arrow_chunk(columns, rows, layout, symbol, parser, collector, source, name):
    import pyarrow as pa

    n = len(rows)
    ok = np.ones(n, bool)
    problems: list[tuple[int, str, str]] = []

    def missing(arr, col):
        if arr.null_count:
            nulls = np.asarray(arr.is_null().to_numpy(zero_copy_only=False))
            for i in np.flatnonzero(nulls & ok).tolist():
                problems.append((int(rows[i]), "missing field", f"missing value in {col!r}"))
            ok[nulls] = False

    cols = []
    for role in PRICE_COLUMNS:
        if role not in layout.prices:       # no volume column
            cols.append(np.full(n, np.nan))
            continue
        col = layout.prices[role]
        arr = columns[col]
        missing(arr, col)
        if arr.type != pa.float64():
            arr = _pc().cast(arr, pa.float64())
        if arr.null_count:
            arr = arr.fill_null(0.0)
        cols.append(_arrow_numpy(arr))
    for col in layout.time_columns:
        missing(columns[col], col)
    if layout.ts is not None:
        arr = columns[layout.ts]
        typ = arr.type
        if pa.types.is_timestamp(typ) and typ.unit == "ns" and not arr.null_count:
            vals = _arrow_i64(arr)            # zero-copy
            got = parser.parse_utc_ns(vals) if typ.tz else parser.parse_naive_ns(vals)
        elif pa.types.is_timestamp(typ):
            # The stored integers in their own unit, scaled with a range check (a cast to
            # ns would fail for the whole batch without naming the row).
            raw = _arrow_ints(_pc().cast(arr, pa.int64()))
            vals, oob = _scale_ns(raw, _UNIT_NS[typ.unit])
            shown = raw.view(f"datetime64[{typ.unit}]")
            got = (parser.parse_utc_ns(vals, oob, shown) if typ.tz
                   else parser.parse_naive_ns(vals, oob, shown))
        elif pa.types.is_integer(typ) or pa.types.is_floating(typ):
            vals = np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False))
            got = parser.parse_epoch(vals)
        elif pa.types.is_date(typ):
            days = _arrow_ints(_pc().cast(_pc().cast(arr, pa.date32()), pa.int32()))
            vals, oob = _scale_ns(days, _DAY_NS)
            got = parser.parse_naive_ns(vals, oob, days.view("datetime64[D]"))
        else:
            text = np.asarray(arr.fill_null("").to_numpy(zero_copy_only=False), dtype=object)
            text = _strip(text)
            got = _parse_text_rows(parser, text, ok, rows, problems, name)
    else:
        d, t = columns[layout.date], columns[layout.time]
        if pa.types.is_date(d.type) and pa.types.is_time(t.type):
            days = _arrow_ints(_pc().cast(_pc().cast(d, pa.date32()), pa.int32()))
            tod = _arrow_ints(_pc().cast(_pc().cast(t, pa.time64("ns")), pa.int64()))
            day_ns, oob = _scale_ns(days, _DAY_NS)
            oob |= day_ns > _NS_MAX - tod            # 0 <= tod < one day
            vals = np.where(oob, 0, day_ns + np.where(oob, 0, tod))
            got = parser.parse_naive_ns(vals, oob, days.view("datetime64[D]"))
        else:
            dt = np.asarray(_pc().cast(d, pa.string()).fill_null("").to_numpy(
                zero_copy_only=False), dtype=object)
            tm = np.asarray(_pc().cast(t, pa.string()).fill_null("").to_numpy(
                zero_copy_only=False), dtype=object)
            text = _strip(np.asarray([f"{a} {b}" for a, b in zip(dt, tm)], dtype=object))
            got = _parse_text_rows(parser, text, ok, rows, problems, name)
    ns, bad, reasons = got
    if bad.any():
        for i, (category, reason) in zip(np.flatnonzero(bad & ok).tolist(),
                                         _reasons_for(bad, ok, reasons)):
            problems.append((int(rows[i]), category, reason))
        ok &= ~bad
    syms = symbol
    if layout.symbol is not None:
        arr = columns[layout.symbol]
        if pa.types.is_dictionary(arr.type):
            arr = _pc().cast(arr, pa.string())
        missing(arr, layout.symbol)
        # One check per distinct symbol: the column as codes into its distinct values.
        enc = _pc().dictionary_encode(arr.fill_null("") if arr.null_count else arr)
        names = [v.strip() for v in enc.dictionary.to_pylist()]
        codes = _arrow_numpy(enc.indices).astype(np.int64)
        blank = np.array([not v for v in names], bool)
        if blank.any():
            empty = blank[codes] & ok
            for i in np.flatnonzero(empty).tolist():
                problems.append((int(rows[i]), "missing field",
                                 f"missing value in {layout.symbol!r}"))
            ok &= ~empty
        syms = (codes, names)
    collector.handle(source, problems)
    if ok.all():
        collector.add(source, syms, ns, cols, rows, n)
        return
    keep = np.flatnonzero(ok)
    collector.add(source, syms if isinstance(syms, str) else (syms[0][keep], syms[1]),
                  ns[keep], [c[keep] for c in cols], rows[keep], n)
