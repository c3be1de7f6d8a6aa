"""The CSV fast path: a whole file through pyarrow's multithreaded parser, the columns typed
as the layout needs; anything irregular goes to the careful path (:mod:`.csv_careful`)."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..bars import PRICE_COLUMNS

from .base import (
    _arrow_numpy, _open_binary, _READ_ERRORS, _stem, _text_encoding, _why, CSV_SUFFIXES, ReadError,
    ReadOptions, ReadWarning, TS_FORMATS_EPOCH,
)
from .layout import _CsvHead, _detect_layout, _Layout, _sniff
from .timeparse import _arrow_i64, _TimeParser
from .result import _Collector, _symbol, ReadResult
from .csv_careful import _csv_careful


def read_csv(path: str | os.PathLike, **options) -> ReadResult:
    """Read bars from one CSV file (plain, ``.gz``, ``.bz2`` or ``.xz``).

    Parameters
    ----------
    path : path-like
    **options
        The fields of :class:`ReadOptions` (``interval``, ``stamp``, ``tz``, ``ts_format``,
        ``ts_column``, ``date_column``, ``time_column``, ``symbol_column``, ``symbol``,
        ``columns`` (names of the fields, or renames of the price columns), ``header``,
        ``delimiter``, ``on_bad``, ``encoding``, ``chunk_rows``).  A file without a volume
        column gives bars without volume (NaN, ``Bars.has_volume`` False).

    Returns
    -------
    ReadResult

    Raises
    ------
    ReadError
        A malformed file or row, naming the file and line.
    """
    opts = ReadOptions(**options).checked()
    collector = _Collector(opts)
    _read_csv_into(Path(path), opts, collector)
    return collector.finish()


@dataclass
class _CsvPlan:
    """A CSV file sniffed, its layout found, its time format settled and (unless it must be
    read carefully) its columns parsed by pyarrow: everything that needs no collector, so
    that it can run on a worker thread while the previous file is collected."""

    path: Path
    head: _CsvHead
    layout: _Layout
    symbol: str | None
    parser: _TimeParser
    table: Any = None           # the pyarrow table of the fast path, None to read carefully


def _csv_plan(path: Path, opts: ReadOptions, split: bool = True) -> _CsvPlan:
    """Prepare a CSV file (``split``: cut a big plain file in a block per core)."""
    name = str(path)
    head = _sniff(path, opts)
    header, first, first_line = head.fields, head.first, head.first_line
    layout = _detect_layout(header, opts, name)
    symbol = None if layout.symbol else (opts.symbol or _stem(path))
    if symbol is not None:
        symbol = _symbol(symbol, name, None, "line") if opts.symbol is None else symbol
    parser = _TimeParser(opts)
    if first is not None and len(first) == len(header):
        idx = [header.index(c) for c in layout.time_columns]
        text = " ".join(first[i].strip() for i in idx)
        if text.strip():
            try:
                parser.settle(text)
            except ValueError as exc:
                raise ReadError(name, first_line, str(exc)) from None
    plan = _CsvPlan(path, head, layout, symbol, parser)
    if first is not None and len(first) != len(header):
        return plan             # the first row already differs from the header: careful
    try:
        plan.table = _csv_table(path, opts, head, layout, parser, split)
    except _Careful:
        pass
    return plan


def _read_csv_into(path: Path, opts: ReadOptions, collector: _Collector,
                   plan: _CsvPlan | None = None) -> None:
    plan = plan if plan is not None else _csv_plan(path, opts)
    name = str(path)
    head, layout, symbol, parser = plan.head, plan.layout, plan.symbol, plan.parser
    source = collector.begin(name, "line", layout.has_volume)
    collector.result._time_fields[source] = (
        "csv", head.delimiter, [head.fields.index(c) for c in layout.time_columns],
        opts.encoding)
    collector.result._parsers[source] = parser
    if symbol is not None:
        collector.declare(symbol)
    try:
        if plan.table is None:
            raise _Careful()
        _csv_fast(plan, collector, source)
    except _Careful:
        collector.restart()
        _csv_careful(path, opts, collector, source, head, layout, symbol, parser)
    if not collector.pending_rows:
        warnings.warn(f"{name}: no data rows" + (" (only a header line)" if opts.header
                                                 else ""), ReadWarning, stacklevel=3)
    collector.commit()


class _Careful(Exception):
    """The fast reader met something irregular: read the file again, line by line."""


def _csv_table(path: Path, opts: ReadOptions, head: _CsvHead, layout: _Layout,
               parser: _TimeParser, split: bool):
    """The whole file through pyarrow's CSV parser, with the columns typed as the layout
    needs (prices float64, ISO 8601 times as timestamps).  Anything it cannot vouch for (a
    field count that differs, an empty or malformed field, a time of the other kind, a line
    that is not text) raises _Careful: the careful reader then names the line.  Line numbers
    assume one record per line: no blank line inside (pyarrow would refuse one) and no line
    break inside quotes."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    header = head.fields
    # Fields are named by position: the header's own names may be empty or repeated.
    ids = [f"f{i}" for i in range(len(header))]
    pos = {c: ids[header.index(c)] for c in layout.needed}
    types = {pos[c]: pa.float64() for c in layout.price_columns}
    if layout.ts is not None:
        if parser.mode == "iso":
            types[pos[layout.ts]] = pa.timestamp("ns", "UTC" if parser.aware else None)
        elif parser.mode in TS_FORMATS_EPOCH:
            types[pos[layout.ts]] = pa.int64()
        else:
            types[pos[layout.ts]] = pa.string()
    else:
        types[pos[str(layout.date)]] = pa.string()
        types[pos[str(layout.time)]] = pa.string()
    if layout.symbol is not None:
        types[pos[layout.symbol]] = pa.dictionary(pa.int32(), pa.string())
    enc = _text_encoding(opts.encoding)
    # pyarrow parses blocks in parallel: a single plain file is cut in about one block per
    # core; several files are parsed a file per core instead (see _csv_plans).
    block = 1 << 23
    if split and path.suffix.lower() in CSV_SUFFIXES:
        block = min(max(1 << 20, path.stat().st_size // (os.cpu_count() or 1) + 1), 1 << 26)
    elif path.suffix.lower() in CSV_SUFFIXES:
        block = min(max(block, path.stat().st_size + 1), 1 << 26)
    read_options = pacsv.ReadOptions(
        column_names=ids, skip_rows=head.skip, use_threads=True, block_size=block,
        encoding="utf8" if enc == "utf-8-sig" else opts.encoding)
    parse_options = pacsv.ParseOptions(delimiter=head.delimiter, newlines_in_values=False,
                                       ignore_empty_lines=False)
    convert_options = pacsv.ConvertOptions(
        column_types=types, include_columns=sorted(set(pos.values()), key=ids.index),
        null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True,
        check_utf8=True)
    try:
        with _open_binary(path) as raw:
            data = raw.read()
        if not head.cr_only and b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
            # A bare CR inside a file of LF lines: pyarrow would take it for a line end and
            # shift the line numbers after it; the careful reader names its line.
            raise _Careful()
        if enc == "utf-8-sig" and not _valid_utf8(data):
            # pyarrow checks only the columns it converts: a byte that is not text in any
            # field goes to the careful reader, which names its line (as for any other).
            raise _Careful()
        table = pacsv.read_csv(pa.BufferReader(data), read_options=read_options,
                               parse_options=parse_options, convert_options=convert_options)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError,
            UnicodeDecodeError):
        raise _Careful() from None
    except _READ_ERRORS as exc:
        # A damaged compressed file (bad CRC, corrupt deflate data ...) or a failing disk:
        # reading it again line by line would meet the same error.
        raise ReadError(str(path), None, f"cannot read: {_why(exc)}") from None
    if any(table.column(c).null_count for c in set(pos.values())):
        raise _Careful()
    return table.rename_columns([header[ids.index(c)] for c in table.column_names])


def _valid_utf8(data: bytes) -> bool:
    """Whether ``data`` is UTF-8 text, checked by pyarrow without a copy."""
    import pyarrow as pa

    offsets = pa.py_buffer(np.array([0, len(data)], np.int64))
    blob = pa.LargeBinaryArray.from_buffers(pa.large_binary(), 1,
                                            [None, offsets, pa.py_buffer(data)])
    try:
        blob.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def _csv_fast(plan: _CsvPlan, collector: _Collector, source: int) -> None:
    """Collect the rows of a file pyarrow parsed (raises _Careful for a bad time)."""
    import pyarrow as pa

    table, head, layout, symbol, parser = (plan.table, plan.head, plan.layout, plan.symbol,
                                           plan.parser)
    pos: dict[Any, str] = {c: c for c in layout.needed}
    n = table.num_rows
    if n == 0:
        return
    lines = np.arange(head.skip + 1, head.skip + 1 + n, dtype=np.int64)
    if layout.ts is not None and parser.mode == "iso":
        arr = table.column(pos[layout.ts])
        ints = _arrow_i64(arr)
        got = parser.parse_utc_ns(ints) if parser.aware else parser.parse_naive_ns(ints)
    elif layout.ts is not None and parser.mode in TS_FORMATS_EPOCH:
        got = parser.parse_epoch(_arrow_i64(table.column(pos[layout.ts])))
    else:
        import pyarrow.compute as pc

        if layout.ts is not None:
            text = pc.utf8_trim_whitespace(table.column(pos[layout.ts]))
        else:
            text = pc.binary_join_element_wise(
                pc.utf8_trim_whitespace(table.column(pos[layout.date])),
                pc.utf8_trim_whitespace(table.column(pos[layout.time])), " ")
        text = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
        got = parser.parse_text(text)
    ns, bad, _reasons = got
    if bad.any():
        raise _Careful()
    cols = [_arrow_f64(table.column(pos[layout.prices[c]])) if c in layout.prices
            else np.full(n, np.nan) for c in PRICE_COLUMNS]
    syms: Any
    if symbol is not None:
        syms = symbol
    else:
        col = table.column(pos[layout.symbol]).unify_dictionaries().combine_chunks() \
            if table.column(pos[layout.symbol]).num_chunks > 1 else \
            table.column(pos[layout.symbol]).chunk(0)
        syms = (_arrow_numpy(col.indices).astype(np.int64),
                col.dictionary.to_pylist())
    collector.add(source, syms, ns, cols, lines, n)


def _arrow_f64(arr) -> np.ndarray:
    """A float64 arrow column without nulls as numpy (zero-copy for one chunk)."""
    return _arrow_numpy(arr)
