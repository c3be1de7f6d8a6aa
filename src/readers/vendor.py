"""Vendor bar formats read directly: QuantConnect LEAN, Databento DBN and Binance klines.

``read_bars(path, format=NAME)`` (``--format NAME`` on the command line) sends a path here;
every reader returns the same :class:`~sessiondata.readers.ReadResult` as the CSV and Parquet
readers: per symbol a sorted, validated :class:`~sessiondata.bars.Bars` labelled by the bar's
open in int64 nanoseconds UTC, with its interval set, and for each bar the file and line (or
record) it came from.  Errors name the file (``archive.zip/member.csv`` inside a zip), the line
or record and the field; ``on_bad="drop"`` drops such rows and counts them by reason in
:attr:`ReadResult.dropped`.  Parsing is vectorised (pyarrow and NumPy): no Python loop runs
per row.

Formats
-------
``lean``
    QuantConnect LEAN US equity minute (or second) data: a folder per symbol of
    ``YYYYMMDD_trade.zip`` / ``YYYYMMDD_quote.zip``, each holding one header-less CSV.  Trade
    rows are ``ms_since_midnight,open,high,low,close,volume``; quote rows are
    ``ms,bid_open,bid_high,bid_low,bid_close,bid_size,ask_open,ask_high,ask_low,ask_close,
    ask_size``.  Times are milliseconds since midnight of the file name's date in New York
    time (the bar's open), prices are deci-cents (divided by 10,000).  The symbol is the
    folder's name, upper-cased.  A LEAN data root (``equity/usa/minute/<sym>/``), any folder
    above the symbol folders, one symbol folder or single zips all work; below a folder,
    tick data, other asset classes and (when ``interval`` is given) other resolutions are
    skipped.  Which bars are read:

    - ``lean`` (= ``lean:auto``): trade bars; a symbol that has no trade zip at all is read
      from its quote zips as mid prices.
    - ``lean:trade``: trade bars only (quote zips are ignored).
    - ``lean:mid``, ``lean:bid``, ``lean:ask``: quote bars only: the bid, the ask, or their
      mid (each of open, high, low, close is ``(bid + ask) / 2``; a row with one side absent
      takes the side present, as LEAN's own QuoteBar does).  Quote bars have no traded volume
      (the bid and ask sizes are not volume): their bars have no volume (NaN, ``has_volume``
      False), as a CSV without a volume column.

    Only equity data is read this way: LEAN's forex, CFD, crypto, index, future and option
    files keep actual prices in other time zones and other layouts, and are refused by name.

``databento``
    Databento DBN files (``.dbn``, or zstd-compressed ``.dbn.zst``) of schema ``ohlcv-1m``,
    ``ohlcv-1s`` or ``ohlcv-1h``, read through the official ``databento-dbn`` package
    (``pip install "sessiondata[databento]"``).  ``ts_event`` is the bar's open; prices are
    fixed-point integers in units of 1e-9.  A file holds several instruments: each record's
    ``instrument_id`` is named by the metadata's symbology mappings (the requested symbol,
    e.g. the raw symbol ``ESU4``, over the date ranges where it maps to that id).  When one
    requested symbol maps to several instruments at once (a parent symbol such as
    ``ES.FUT``), each is named ``<symbol>:<instrument_id>``; a file without mappings names
    instruments by their id.  Errors name the record by its index (from 0).

``binance``
    Binance kline CSVs (or the ``.zip`` of one, as the public dumps ship them): 12 fields,
    ``open_time, open, high, low, close, volume, close_time, quote_volume, trades,
    taker_buy_base, taker_buy_quote, ignore``, with or without a header line.  Times are epoch
    milliseconds; files whose open times are 10**14 or more are in microseconds (Binance's
    spot dumps since 2025), which is decided per file from the first row.  The interval is
    ``close_time - open_time + 1`` (and, when the file name says it, must agree with the name,
    e.g. ``ADABTC-1m-2021-11-27.csv``); the symbol is the file name's part before the
    interval (``ADABTC``).  A folder of such files is read as one set, joined per symbol.
"""

from __future__ import annotations

import datetime as _dt
import io
import os
import re
import zipfile
import zlib
import zoneinfo
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..bars import PRICE_COLUMNS, Bars
from ..intervals import Interval, parse_interval
from ..symbols import check_symbol
from .base import ReadError, ReadOptions
from .result import ReadResult, store_checked

__all__ = ["FORMATS", "read_binance", "read_databento", "read_format", "read_lean"]

FORMATS = ("lean", "lean:auto", "lean:trade", "lean:mid", "lean:bid", "lean:ask",
           "databento", "binance")
EXTRA_HINT = 'pip install "sessiondata[databento]"'

_NS = 1_000_000_000
_DAY_NS = 86_400 * _NS
_MS_PER_DAY = 86_400_000
_I64_MAX = int(np.iinfo(np.int64).max)
# Validation kernel faults named in messages (sessiondata._core.validation.FAULTS).
_FAULT_UNSORTED, _FAULT_DUPLICATE = 4, 5

# Read options that these formats use; the rest must keep their defaults (a vendor format
# fixes its time zone, stamping, columns and delimiter).
_USED = {"interval", "on_bad", "symbol"}
_IGNORED = {"encoding", "chunk_rows"}


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def read_format(paths: str | os.PathLike | Iterable[str | os.PathLike], format: str,
                **options: Any) -> ReadResult:
    """Read vendor files of ``format`` (one of :data:`FORMATS`) into a ReadResult.

    Parameters
    ----------
    paths : path-like or iterable of path-like
        Files or folders.
    format : str
        ``"lean"`` (or ``"lean:trade"``, ``"lean:mid"``, ``"lean:bid"``, ``"lean:ask"``),
        ``"databento"`` or ``"binance"``.
    **options
        ``interval`` (the interval the caller expects: a file of another interval is an
        error), ``on_bad`` (``"raise"`` or ``"drop"``), ``symbol`` (renames the one symbol
        read).  Other :class:`~sessiondata.readers.ReadOptions` fields must keep their
        defaults: the format fixes them.

    Returns
    -------
    ReadResult
    """
    name = str(format).strip().lower()
    if name not in FORMATS:
        raise ValueError(f"unknown format {format!r}; use one of {', '.join(FORMATS)} "
                         "(or csv, parquet)")
    interval, on_bad, symbol = _options(name, options)
    files = _as_paths(paths)
    if name.startswith("lean"):
        prices = name.partition(":")[2] or "auto"
        return read_lean(files, prices=prices, interval=interval, on_bad=on_bad, symbol=symbol)
    if name == "databento":
        return read_databento(files, interval=interval, on_bad=on_bad, symbol=symbol)
    return read_binance(files, interval=interval, on_bad=on_bad, symbol=symbol)


def _options(fmt: str, options: dict) -> tuple[str | None, str, str | None]:
    defaults = ReadOptions()
    for key, value in options.items():
        if key in _USED or key in _IGNORED:
            continue
        if value is None or value is False or value == getattr(defaults, key, None):
            continue
        if key == "tz" and str(value) in ("UTC", "Etc/UTC", "utc"):
            continue
        raise ValueError(f"{key}={value!r} does not apply to format {fmt!r}: the format fixes "
                         "its own time zone, stamping and fields")
    on_bad = options.get("on_bad") or "raise"
    if on_bad not in ("raise", "drop"):
        raise ValueError(f"on_bad must be 'raise' or 'drop', got {on_bad!r}")
    interval = options.get("interval")
    if interval is not None:
        iv = parse_interval(interval)
        if iv.is_session:
            raise ValueError("the bars' interval cannot be '1d'; give an intraday interval")
    symbol = options.get("symbol")
    if symbol is not None:
        check_symbol(symbol)
    return interval, on_bad, symbol


def _as_paths(paths) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = [Path(p) for p in paths]
    for p in out:
        if not p.exists():
            raise ReadError(str(p), None, "no such file or folder")
    return out


def _interval_name(ns: int) -> str:
    for unit, size in (("h", 3600 * _NS), ("m", 60 * _NS), ("s", _NS)):
        if ns % size == 0:
            return f"{ns // size}{unit}"
    raise ValueError(f"{ns} ns is not a whole number of seconds")


def _ts_text(ns: int) -> str:
    return str(np.datetime64(int(ns), "ns")) + "Z"


# --------------------------------------------------------------------------------------------
# Building the result: per source problems, per symbol pieces, one validation at the end
# --------------------------------------------------------------------------------------------


class _Builder:
    """Collects clean rows per symbol, source by source, and builds the ReadResult."""

    def __init__(self, on_bad: str, interval: str | None):
        self.on_bad = on_bad
        self.expected = parse_interval(interval) if interval is not None else None
        self.result = ReadResult()
        self.pieces: dict[str, list] = {}
        self.intervals: dict[str, tuple[Interval, str]] = {}
        self.volume: dict[str, bool] = {}

    def source(self, name: str, unit: str) -> int:
        self.result.sources.append(name)
        self.result._units.append(unit)
        return len(self.result.sources) - 1

    def problems(self, src: int, items: list[tuple[int, str, str]]) -> None:
        """Raise for the first (by line) or count them, by category."""
        if not items:
            return
        if self.on_bad == "raise":
            line, _category, reason = min(items)
            raise ReadError(self.result.sources[src], line, reason, self.result._units[src])
        self.result.dropped.update(category for _line, category, _reason in items)

    def add(self, symbol: str, src: int, iv: Interval, ts, cols, lines,
            has_volume: bool = True) -> None:
        name = self.result.sources[src]
        if self.volume.setdefault(symbol, has_volume) != has_volume:
            raise ReadError(name, None, f"{'has' if has_volume else 'has no'} volume for "
                            f"{symbol}, while other files {'do not' if has_volume else 'do'}")
        if self.expected is not None and iv.ns != self.expected.ns:
            raise ReadError(name, None, f"holds {iv.name} bars, not {self.expected.name}: "
                            f"read it with interval={iv.name!r} (--base {iv.name})")
        seen = self.intervals.setdefault(symbol, (iv, name))
        if seen[0].ns != iv.ns:
            raise ReadError(name, None, f"holds {iv.name} bars of {symbol}, while {seen[1]} "
                            f"holds {seen[0].name} bars of it")
        self.pieces.setdefault(symbol, [])
        if len(ts):
            self.pieces[symbol].append((src, np.ascontiguousarray(ts, np.int64),
                                        [np.ascontiguousarray(c, np.float64) for c in cols],
                                        np.asarray(lines, np.int64)))

    def finish(self) -> ReadResult:
        """Join each symbol's pieces (sources in time order), validate, build Bars."""
        result = self.result
        for symbol in sorted(self.pieces):
            iv = self.intervals[symbol][0]
            has_volume = self.volume[symbol]
            pieces = sorted(self.pieces[symbol], key=lambda p: (int(p[1][0]), p[0]))
            if not pieces:
                result.bars[symbol] = Bars(np.empty(0, np.int64), *([np.empty(0)] * 5),
                                           interval=iv, validate=False, has_volume=has_volume)
                result._source_of[symbol] = np.empty(0, np.int32)
                result._line_of[symbol] = np.empty(0, np.int64)
                continue
            ts = np.concatenate([p[1] for p in pieces])
            cols = [np.concatenate([p[2][k] for p in pieces]) for k in range(5)]
            result._source_of[symbol] = np.concatenate(
                [np.full(len(p[1]), p[0], np.int32) for p in pieces])
            result._line_of[symbol] = np.concatenate([p[3] for p in pieces])
            store_checked(result, symbol, ts, cols, iv, has_volume, self.on_bad)
        return result


# --------------------------------------------------------------------------------------------
# Header-less numeric CSV, vectorised (LEAN and Binance)
# --------------------------------------------------------------------------------------------

_FLOAT_RE = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_INT_RE = r"^[+-]?\d{1,18}$"


class _Table:
    """Parsed rows of a CSV: the wanted fields as arrays, each row's line, which rows are
    good, and (line, category, reason) of the bad ones."""

    def __init__(self, columns: dict, lines: np.ndarray, ok: np.ndarray, problems: list,
                 rows: int):
        self.columns = columns
        self.lines = lines
        self.ok = ok
        self.problems = problems
        self.rows = rows

    def fail(self, mask: np.ndarray, category: str, reasons) -> None:
        """Rows of ``mask`` that are still good become bad with ``reasons(index)``."""
        idx = np.flatnonzero(mask & self.ok)
        for i in idx.tolist():
            self.problems.append((int(self.lines[i]), category, reasons(i)))
        self.ok[idx] = False


def _line_bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (without the line break, CR included) of each line of a byte buffer."""
    n = len(buf)
    nl = np.flatnonzero(buf == 10)
    starts = np.concatenate(([0], nl + 1))
    ends = np.concatenate((nl, [n]))
    if starts[-1] == n:            # a final line break ends the last line; no empty line after
        starts, ends = starts[:-1], ends[:-1]
    cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13)
    return starts, ends - cr


def _parse_csv(data: bytes, name: str, fields: tuple[str, ...], want: dict[str, str],
               header: bool = False, optional: tuple[str, ...] = ()) -> _Table:
    """Parse header-less comma-separated numbers.

    ``want`` maps field names to ``"int"`` or ``"float"``; the other fields are only counted.
    With ``header``, a first line that starts with a letter is a header and skipped.
    Empty values of ``optional`` fields become NaN instead of a problem.
    """
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv
    except ImportError:
        raise ImportError("reading LEAN and Binance files needs pyarrow: "
                          'pip install "sessiondata[arrow]"') from None

    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    fast = _parse_csv_fast(data, fields, want, header, pa, pacsv)
    if fast is not None:
        return fast
    buf = np.frombuffer(data, np.uint8)
    starts, ends = _line_bounds(buf)
    line_no = np.arange(1, len(starts) + 1, dtype=np.int64)
    blank = ends == starts
    data_mask = ~blank
    offset = 0
    nonblank = np.flatnonzero(data_mask)
    if header and len(nonblank):
        k = int(nonblank[0])
        head = bytes(buf[starts[k]:min(ends[k], starts[k] + 1)])
        if head.isalpha():      # a header starts with a name (open_time ...)
            data_mask[: k + 1] = False
            offset = int(ends[k])
    commas = np.flatnonzero(buf == 44)
    nfields = np.searchsorted(commas, ends) - np.searchsorted(commas, starts) + 1
    wrong = data_mask & (nfields != len(fields))
    problems: list[tuple[int, str, str]] = []
    for i in np.flatnonzero(wrong).tolist():
        text = bytes(buf[starts[i]:ends[i]]).decode("utf-8", "replace")
        problems.append((int(line_no[i]), "wrong field count",
                         f"{int(nfields[i])} fields, expected {len(fields)} "
                         f"({','.join(fields)}): {text[:80]!r}"))
    good = data_mask & ~wrong
    lines = line_no[good]
    rows = int(data_mask.sum())
    columns: dict[str, np.ndarray] = {}
    if not len(lines):
        for f, kind in want.items():
            columns[f] = np.empty(0, np.int64 if kind == "int" else np.float64)
        return _Table(columns, lines, np.ones(0, bool), problems, rows)
    try:
        table = pacsv.read_csv(
            io.BytesIO(data[offset:] if offset else data),
            # Latin-1 takes every byte: a stray non-ASCII byte is then a bad number on its
            # line, not an undecodable file.
            read_options=pacsv.ReadOptions(column_names=list(fields), use_threads=False,
                                           encoding="latin-1"),
            parse_options=pacsv.ParseOptions(quote_char=False, ignore_empty_lines=True,
                                             invalid_row_handler=lambda row: "skip"),
            convert_options=pacsv.ConvertOptions(
                column_types={f: pa.string() for f in want}, include_columns=list(want),
                strings_can_be_null=False, quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise ReadError(name, None, f"cannot parse as CSV: {exc}") from None
    if table.num_rows != len(lines):
        raise ReadError(name, None, f"cannot parse as CSV: {table.num_rows} rows parsed, "
                        f"{len(lines)} lines with {len(fields)} fields")
    out = _Table(columns, lines, np.ones(len(lines), bool), problems, rows)
    for f, kind in want.items():
        col = table.column(f).combine_chunks()
        target = pa.int64() if kind == "int" else pa.float64()
        try:
            columns[f] = np.asarray(pc.cast(col, target).to_numpy(zero_copy_only=False))
            continue
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        # Something did not parse: find which values, say why, parse the rest.
        trimmed = pc.utf8_trim_whitespace(col)
        empty = np.asarray(pc.equal(trimmed, "").to_numpy(zero_copy_only=False), bool)
        valid = np.asarray(pc.match_substring_regex(
            trimmed, _INT_RE if kind == "int" else _FLOAT_RE).to_numpy(zero_copy_only=False),
            bool)
        values = np.asarray(pc.cast(pc.if_else(pa.array(valid), trimmed, "0"), target)
                            .to_numpy(zero_copy_only=False))
        if f in optional and kind == "float":
            values = values.astype(np.float64)
            values[empty] = np.nan
        else:
            out.fail(empty, "missing field", lambda i, f=f: f"missing value in field {f!r}")
        wrong = ~valid & ~empty
        raw: list = col.to_pylist() if wrong.any() else []
        out.fail(wrong, "bad number", lambda i, f=f, kind=kind: _bad_number(raw[i], f, kind))
        columns[f] = values
    return out


def _bad_number(value: str, field: str, kind: str) -> str:
    if kind == "int":
        digits = value.strip().lstrip("+-")
        more = " (more than 18 digits)" if digits.isdigit() and len(digits) > 18 else ""
        return f"bad integer {value!r} in field {field!r}{more}"
    return f"bad number {value!r} in field {field!r}"


def _parse_csv_fast(data: bytes, fields, want, header, pa, pacsv) -> _Table | None:
    """The clean file's path: typed columns straight from pyarrow, lines counted, no scan.

    Returns None when anything is irregular (a blank line, a row of another width, a value
    that does not parse): the careful path then finds and names each such line.
    """
    first_line = 1
    body = data
    if header:
        head = data[:1]
        if head.isalpha():      # a header starts with a name (open_time ...)
            cut = data.find(b"\n")
            body = b"" if cut < 0 else data[cut + 1:]
            first_line = 2
    if (not body or not body.isascii() or body.startswith((b"\n", b"\r"))
            or b"\n\n" in body or b"\n\r\n" in body):
        return None
    nlines = body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
    invalid: list = []

    def skip(row) -> str:
        invalid.append(row)
        return "skip"

    types = {f: pa.int64() if kind == "int" else pa.float64() for f, kind in want.items()}
    try:
        table = pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(column_names=list(fields)),
            parse_options=pacsv.ParseOptions(quote_char=False, ignore_empty_lines=False,
                                             invalid_row_handler=skip),
            convert_options=pacsv.ConvertOptions(column_types=types,
                                                 include_columns=list(want)))
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    if invalid or table.num_rows != nlines:
        return None
    columns = {}
    for f in want:
        col = table.column(f)
        if col.null_count:
            return None
        columns[f] = np.asarray(col.to_numpy())
    lines = np.arange(first_line, first_line + nlines, dtype=np.int64)
    return _Table(columns, lines, np.ones(nlines, bool), [], nlines)


# --------------------------------------------------------------------------------------------
# QuantConnect LEAN
# --------------------------------------------------------------------------------------------

_LEAN_ZIP = re.compile(r"^(\d{8})_(trade|quote)\.zip$", re.IGNORECASE)
_LEAN_MEMBER = re.compile(r"^\d{8}_[^_]+_(second|minute|tick)_(trade|quote)\.csv$",
                          re.IGNORECASE)
_LEAN_RESOLUTIONS = {"minute": "1m", "second": "1s"}
_LEAN_OTHER_TYPES = ("forex", "cfd", "crypto", "cryptofuture", "future", "futureoption",
                     "option", "indexoption", "index")
_LEAN_ZONE = "America/New_York"
_LEAN_SCALE = 10_000.0
_TRADE_FIELDS = ("ms", "open", "high", "low", "close", "volume")
_QUOTE_FIELDS = ("ms", "bid_open", "bid_high", "bid_low", "bid_close", "bid_size",
                 "ask_open", "ask_high", "ask_low", "ask_close", "ask_size")
_SLOT_MS = 15 * 60 * 1000   # daylight-saving changes happen on a quarter hour


def read_lean(paths, *, prices: str = "auto", interval: str | None = None,
              on_bad: str = "raise", symbol: str | None = None) -> ReadResult:
    """Read QuantConnect LEAN equity minute (or second) zips; see the module's notes.

    Parameters
    ----------
    paths : path-like or list of them
        A LEAN data root or any folder above symbol folders, symbol folders, or zips.
    prices : {"auto", "trade", "mid", "bid", "ask"}
        Which bars: trade bars (``auto`` falls back to quote mids for a symbol without trade
        zips), or quote bars' bid, ask or mid prices.
    interval, on_bad, symbol
        As for :func:`read_format`.
    """
    if prices not in ("auto", "trade", "mid", "bid", "ask"):
        raise ValueError(f"prices must be auto, trade, mid, bid or ask, got {prices!r}")
    folders = _lean_folders(_as_paths(paths), interval)
    if symbol is not None and len(folders) > 1:
        raise ValueError(f"symbol= names the symbol of one folder; these are {len(folders)} "
                         "symbol folders")
    builder = _Builder(on_bad, interval)
    zone = zoneinfo.ZoneInfo(_LEAN_ZONE)
    for folder, files in folders.items():
        sym = symbol or folder.name.upper()
        try:
            check_symbol(sym)
        except (TypeError, ValueError) as exc:
            raise ReadError(str(folder), None, f"bad symbol from the folder name: {exc}") \
                from None
        kinds = {kind for _d, kind, _p in files}
        if prices == "trade" or (prices == "auto" and "trade" in kinds):
            use, rule = "trade", "trade"
        else:
            use, rule = "quote", ("mid" if prices == "auto" else prices)
        chosen = [(d, p) for d, kind, p in files if kind == use]
        if not chosen:
            raise ReadError(str(folder), None, f"no {use} zips (YYYYMMDD_{use}.zip) for "
                            f"format 'lean:{prices}'")
        resolution = _lean_resolution(folder)
        for date, path in chosen:
            _lean_zip(builder, path, date, sym, rule, resolution, zone)
    return builder.finish()


def _lean_folders(paths: list[Path], interval: str | None
                  ) -> dict[Path, list[tuple[_dt.date, str, Path]]]:
    """Symbol folder -> its (date, kind, zip) files, sorted; zips are found at any depth.

    A symbol folder found below a given folder is skipped when it is not equity bar data
    (tick data, other asset classes) or, with ``interval``, of another resolution: a whole
    LEAN data root reads as its equity bars of that interval.  A folder or zip given by name
    is refused instead.
    """
    want = parse_interval(interval).ns if interval is not None else None
    found: dict[Path, list] = {}
    for p in paths:
        if p.is_file():
            if not _LEAN_ZIP.match(p.name):
                raise ReadError(str(p), None, "not a LEAN minute file (expected "
                                "YYYYMMDD_trade.zip or YYYYMMDD_quote.zip)")
            candidates = [p]
        else:
            candidates = sorted(f for f in p.rglob("*") if _LEAN_ZIP.match(f.name)
                                and f.is_file() and not f.name.startswith("."))
            if not candidates:
                raise ReadError(str(p), None, "no LEAN minute files (YYYYMMDD_trade.zip or "
                                "YYYYMMDD_quote.zip) in the folder or below it")
        skipped: list[str] = []
        for f in candidates:
            folder = f.parent
            named = p.is_file() or folder == p
            why = _lean_not_bars(folder)
            if why is None and want is not None:
                res = _lean_resolution(folder)
                if res is not None and parse_interval(res).ns != want:
                    why = (f"holds {res} bars: read them with interval={res!r} "
                           f"(--base {res})")
            if why is not None:
                if named:
                    raise ReadError(str(folder), None, why)
                skipped.append(f"{folder}: {why}")
                continue
            m = _LEAN_ZIP.match(f.name)
            assert m is not None   # candidates match by construction
            try:
                date = _dt.datetime.strptime(m.group(1), "%Y%m%d").date()
            except ValueError:
                raise ReadError(str(f), None, f"the file name's date {m.group(1)!r} is not a "
                                "date (YYYYMMDD)") from None
            found.setdefault(folder, []).append((date, m.group(2).lower(), f))
        if skipped and not any(folder.is_relative_to(p) for folder in found):
            what = f"{interval} " if interval is not None else ""
            folders = sorted(set(skipped))
            raise ReadError(str(p), None, f"no LEAN equity {what}bars in the folder or below "
                            f"it; skipped {len(folders)} symbol folder"
                            f"{'s' if len(folders) > 1 else ''}, e.g. {folders[0]}")
    for files in found.values():
        files.sort()
    return dict(sorted(found.items()))


def _lean_not_bars(folder: Path) -> str | None:
    """Why a symbol folder is not LEAN equity bar data (None when it is, or may be)."""
    parts = [s.lower() for s in folder.resolve().parts]
    if len(parts) >= 4 and parts[-2] in ("minute", "second", "tick", "hour", "daily"):
        if parts[-2] == "tick":
            return "LEAN tick data: it holds ticks, not bars; read the minute or second folder"
        kind = parts[-4]
        if kind in _LEAN_OTHER_TYPES:
            return (f"LEAN {kind} data: format 'lean' reads US equity bars (deci-cent prices "
                    "in New York time); other asset classes keep actual prices in other time "
                    "zones")
    return None


def _lean_resolution(folder: Path) -> str | None:
    """The interval told by the folder (``minute``/``second`` above the symbol folder)."""
    return _LEAN_RESOLUTIONS.get(folder.parent.name.lower())


def _lean_zip(builder: _Builder, path: Path, date: _dt.date, sym: str, rule: str,
              resolution: str | None, zone: zoneinfo.ZoneInfo) -> None:
    name = str(path)
    try:
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) != 1:
                raise ReadError(name, None, f"expected one CSV file in the zip, found "
                                f"{len(members)}")
            member = members[0]
            _not_encrypted(name, member)
            data = zf.read(member)
    except ReadError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error,
            NotImplementedError, RuntimeError) as exc:
        # RuntimeError: what zipfile raises for a member it cannot decrypt.
        raise ReadError(name, None, f"not a readable zip file: {exc}") from None
    where = f"{name}/{member.filename}"
    src = builder.source(where, "line")
    m = _LEAN_MEMBER.match(Path(member.filename).name)
    iv_name = resolution
    if m is not None:
        if m.group(1).lower() == "tick":
            raise ReadError(where, None, "LEAN tick data holds ticks, not bars")
        iv_name = iv_name or _LEAN_RESOLUTIONS[m.group(1).lower()]
    iv = parse_interval(iv_name or "1m")
    if rule == "trade":
        table = _parse_csv(data, where, _TRADE_FIELDS,
                           {f: ("int" if f == "ms" else "float") for f in _TRADE_FIELDS})
        c = table.columns
        cols = [c["open"] / _LEAN_SCALE, c["high"] / _LEAN_SCALE, c["low"] / _LEAN_SCALE,
                c["close"] / _LEAN_SCALE, c["volume"].astype(np.float64)]
    else:
        sides = ("bid", "ask") if rule == "mid" else (rule,)
        price_fields = tuple(f"{s}_{k}" for s in sides for k in ("open", "high", "low", "close"))
        want = {"ms": "int"}
        want.update({f: "float" for f in price_fields})
        table = _parse_csv(data, where, _QUOTE_FIELDS, want, optional=price_fields)
        cols = _lean_quote_prices(table, sides)
    ms = table.columns["ms"]
    table.fail((ms < 0) | (ms >= _MS_PER_DAY), "time out of range",
               lambda i: f"time {int(ms[i])} in field 'ms' is not within the day "
                         "(0 .. 86399999 ms after midnight)")
    ts, skipped = _lean_times(date, np.clip(ms, 0, _MS_PER_DAY - 1), zone)
    table.fail(skipped, "unparseable time",
               lambda i: f"time {int(ms[i])} in field 'ms' (ms after midnight of {date}) "
                         f"does not exist or is ambiguous in {_LEAN_ZONE} (a daylight-saving "
                         "change)")
    builder.problems(src, table.problems)
    builder.result.rows += table.rows
    ok = table.ok
    builder.add(sym, src, iv, ts[ok], [col[ok] for col in cols], table.lines[ok],
                has_volume=rule == "trade")


def _lean_quote_prices(table: _Table, sides: tuple[str, ...]) -> list[np.ndarray]:
    """Open, high, low, close from the quote side(s), and no volume (NaN)."""
    c = table.columns
    keys = ("open", "high", "low", "close")
    have = {s: np.logical_and.reduce([np.isfinite(c[f"{s}_{k}"]) for k in keys])
            for s in sides}
    if len(sides) == 1:
        s = sides[0]
        table.fail(~have[s], "missing field", lambda i: f"no {s} prices on the line")
        out = [np.where(have[s], c[f"{s}_{k}"], 0.0) / _LEAN_SCALE for k in keys]
    else:
        both = have["bid"] & have["ask"]
        table.fail(~have["bid"] & ~have["ask"], "missing field",
                   lambda i: "neither bid nor ask prices on the line")
        out = []
        for k in keys:
            bid, ask = c[f"bid_{k}"], c[f"ask_{k}"]
            mid = np.where(both, (np.where(both, bid, 0.0) + np.where(both, ask, 0.0)) / 2,
                           np.where(have["bid"], bid, np.where(have["ask"], ask, 0.0)))
            out.append(mid / _LEAN_SCALE)
    out.append(np.full(len(out[0]), np.nan))
    return out


def _lean_times(date: _dt.date, ms: np.ndarray, zone: zoneinfo.ZoneInfo
                ) -> tuple[np.ndarray, np.ndarray]:
    """Wall-clock ms after midnight of ``date`` in ``zone`` -> UTC ns, and a mask of times
    that do not exist or are ambiguous (a daylight-saving change that day)."""
    midnight_ns = (date - _dt.date(1970, 1, 1)).days * _DAY_NS
    first = _dt.datetime(date.year, date.month, date.day, tzinfo=zone)
    last = first + _dt.timedelta(hours=23, minutes=59)
    offs = {_offset_ns(first), _offset_ns(first.replace(fold=1)), _offset_ns(last),
            _offset_ns(last.replace(fold=1))}
    ms = ms.astype(np.int64)
    if len(offs) == 1:      # no change that day: one offset
        off_ns = offs.pop()
        return midnight_ns + ms * 1_000_000 - off_ns, np.zeros(len(ms), bool)
    # A change that day: the offset per quarter hour of the wall clock.
    slots = _MS_PER_DAY // _SLOT_MS
    off0 = np.empty(slots, np.int64)
    off1 = np.empty(slots, np.int64)
    for k in range(slots):
        wall = first + _dt.timedelta(milliseconds=k * _SLOT_MS)
        off0[k] = _offset_ns(wall)
        off1[k] = _offset_ns(wall.replace(fold=1))
    slot = ms // _SLOT_MS
    return midnight_ns + ms * 1_000_000 - off0[slot], off0[slot] != off1[slot]


def _offset_ns(wall: _dt.datetime) -> int:
    """The UTC offset of an aware wall time, in ns."""
    off = wall.utcoffset()
    return 0 if off is None else int(off.total_seconds()) * _NS


# --------------------------------------------------------------------------------------------
# Databento DBN
# --------------------------------------------------------------------------------------------

_DBN_SCHEMAS = {"ohlcv-1s": (0x20, "1s"), "ohlcv-1m": (0x21, "1m"), "ohlcv-1h": (0x22, "1h")}
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_UNDEF_PRICE = _I64_MAX
# The OHLCV record of the DBN specification (the same in versions 1 to 3): a 16-byte header
# (length in 4-byte words, rtype, publisher_id, instrument_id, ts_event), then the prices as
# fixed-point int64 (1e-9) and the volume; ts_out follows when the metadata says so.
_OHLCV_FIELDS = [("length", "u1"), ("rtype", "u1"), ("publisher_id", "<u2"),
                 ("instrument_id", "<u4"), ("ts_event", "<u8"), ("open", "<i8"),
                 ("high", "<i8"), ("low", "<i8"), ("close", "<i8"), ("volume", "<u8")]
_DBN_SUFFIXES = (".dbn", ".dbn.zst", ".zst")


def _need_dbn():
    try:
        import databento_dbn
    except ImportError:
        raise ImportError("reading Databento DBN files needs the databento-dbn package: "
                          f"{EXTRA_HINT}") from None
    return databento_dbn


def read_databento(paths, *, interval: str | None = None, on_bad: str = "raise",
                   symbol: str | None = None) -> ReadResult:
    """Read Databento DBN ``ohlcv-1m`` (``-1s``, ``-1h``) files; see the module's notes.

    Parameters
    ----------
    paths : path-like or list of them
        ``.dbn`` / ``.dbn.zst`` files or folders of them.
    interval, on_bad, symbol
        As for :func:`read_format` (``symbol`` only for a file of one instrument).
    """
    dbn = _need_dbn()
    files: list[Path] = []
    for p in _as_paths(paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")
                           and f.name.lower().endswith(_DBN_SUFFIXES))
            if not found:
                raise ReadError(str(p), None, "no DBN files (.dbn, .dbn.zst) in the folder")
            files.extend(found)
        else:
            files.append(p)
    builder = _Builder(on_bad, interval)
    for path in files:
        _dbn_file(builder, dbn, path, symbol)
    return builder.finish()


def _dbn_bytes(path: Path) -> bytes:
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ReadError(name, None, f"cannot read: {exc}") from None
    if raw[:4] != _ZSTD_MAGIC:
        return raw
    try:
        import zstandard
    except ImportError:
        raise ImportError("reading zstd-compressed DBN files needs the zstandard package: "
                          f"{EXTRA_HINT}") from None
    try:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw),
                                                        read_across_frames=True) as reader:
            return reader.read()
    except zstandard.ZstdError as exc:
        raise ReadError(name, None, f"corrupt zstd data: {exc}") from None


def _dbn_file(builder: _Builder, dbn, path: Path, symbol: str | None) -> None:
    name = str(path)
    data = _dbn_bytes(path)
    if data[:3] != b"DBN" or len(data) < 8:
        raise ReadError(name, None, "not a DBN file (it does not start with 'DBN')")
    meta_len = int.from_bytes(data[4:8], "little")
    body_at = 8 + meta_len
    if body_at > len(data):
        raise ReadError(name, None, f"truncated DBN metadata ({meta_len} bytes announced, "
                        f"{len(data) - 8} present)")
    try:
        meta = dbn.Metadata.decode(data[:body_at])
    except Exception as exc:  # the package raises its own error types
        raise ReadError(name, None, f"corrupt DBN metadata: {exc}") from None
    schema = None if meta.schema is None else str(meta.schema)
    if schema not in _DBN_SCHEMAS:
        raise ReadError(name, None, f"schema {schema or 'mixed'!r} is not read as bars; "
                        f"use one of {', '.join(_DBN_SCHEMAS)}")
    rtype, iv_name = _DBN_SCHEMAS[schema]
    iv = parse_interval(iv_name)
    dtype = np.dtype(_OHLCV_FIELDS + ([("ts_out", "<u8")] if meta.ts_out else []))
    body = memoryview(data)[body_at:]
    n, rest = divmod(len(body), dtype.itemsize)
    src = builder.source(name, "record")
    if rest:
        raise ReadError(name, n, f"truncated record: {rest} bytes of a {dtype.itemsize}-byte "
                        f"{schema} record", "record")
    rec = np.frombuffer(body, dtype, count=n)
    index = np.arange(n, dtype=np.int64)
    lengths = rec["length"].astype(np.int64) * 4
    off = np.flatnonzero(lengths != dtype.itemsize)
    if len(off):   # the records cannot be told apart any more: never dropped
        k = int(off[0])
        raise ReadError(name, k, f"record of {int(lengths[k])} bytes in a {schema} file of "
                        f"{dtype.itemsize}-byte records", "record")
    table = _Table({}, index, np.ones(n, bool), [], n)
    rt = rec["rtype"]
    table.fail(rt != rtype, "bad record",
               lambda i: f"record type 0x{int(rt[i]):02x}, expected 0x{rtype:02x} ({schema})")
    ts_u = rec["ts_event"]
    undef_ts = ts_u > np.uint64(_I64_MAX)
    table.fail(undef_ts, "missing field", lambda i: "undefined time in field 'ts_event'")
    ts = np.where(undef_ts, 0, ts_u).astype(np.int64)
    cols = []
    for f in ("open", "high", "low", "close"):
        raw = rec[f]
        undef = raw == _UNDEF_PRICE
        table.fail(undef, "missing field",
                   lambda i, f=f: f"undefined price (UNDEF_PRICE) in field {f!r}")
        cols.append(raw.astype(np.float64) / 1e9)
    cols.append(rec["volume"].astype(np.float64))
    names, symbols = _dbn_symbols(meta, rec["instrument_id"], ts, index)
    if symbol is not None and len(symbols) > 1:
        raise ValueError(f"symbol= names one instrument; {name} holds {len(symbols)}: "
                         f"{', '.join(symbols)}")
    unnamed = names < 0
    iid = rec["instrument_id"]
    table.fail(unnamed, "no symbol",
               lambda i: f"instrument_id {int(iid[i])} at {_ts_text(int(ts[i]))} has no "
                         "symbol in the file's symbology mappings")
    builder.problems(src, table.problems)
    builder.result.rows += n
    ok = table.ok
    for k, sym in enumerate(symbols):
        take = np.flatnonzero(ok & (names == k))
        builder.add(symbol or sym, src, iv, ts[take], [c[take] for c in cols], index[take])


def _dbn_symbols(meta, iid: np.ndarray, ts: np.ndarray, index: np.ndarray
                 ) -> tuple[np.ndarray, list[str]]:
    """Per record the index of its symbol in the returned list (-1: not mapped).

    The mappings go from a requested symbol to instrument ids over UTC date ranges
    (end exclusive).  Work is per mapping interval over the records of its instrument.
    """
    names = np.full(len(iid), -1, np.int64)
    symbols: list[str] = []
    mappings = meta.mappings or {}
    stype_out = str(meta.stype_out) if meta.stype_out is not None else "instrument_id"
    if not mappings or stype_out != "instrument_id":
        ids, inverse = np.unique(iid, return_inverse=True)
        return inverse.astype(np.int64), [str(int(i)) for i in ids]
    order = np.argsort(iid, kind="stable")
    sorted_ids = iid[order]
    intervals = []   # (key, id, start_ns, end_ns)
    for key, spans in mappings.items():
        for span in spans:
            try:
                target = int(span["symbol"])
            except (TypeError, ValueError):
                continue
            start = (span["start_date"] - _dt.date(1970, 1, 1)).days * _DAY_NS
            end = (span["end_date"] - _dt.date(1970, 1, 1)).days * _DAY_NS
            intervals.append((str(key), target, start, end))
    # A requested symbol that maps to several instruments at once (a parent) names each.
    shared = set()
    by_key: dict[str, list] = {}
    for key, target, start, end in intervals:
        by_key.setdefault(key, []).append((start, end, target))
    for key, spans in by_key.items():
        spans.sort()
        for (s0, e0, t0), (s1, e1, t1) in zip(spans, spans[1:]):
            if s1 < e0 and t0 != t1:
                shared.add(key)
    index_of: dict[str, int] = {}
    for key, target, start, end in intervals:
        label = f"{key}:{target}" if key in shared else key
        lo, hi = np.searchsorted(sorted_ids, [target, target + 1])
        if lo == hi:
            continue
        rows = order[lo:hi]
        hit = rows[(ts[rows] >= start) & (ts[rows] < end)]
        if not len(hit):
            continue
        k = index_of.setdefault(label, len(symbols))
        if k == len(symbols):
            symbols.append(label)
        names[hit] = k
    return names, symbols


# --------------------------------------------------------------------------------------------
# Binance klines
# --------------------------------------------------------------------------------------------

_KLINE_FIELDS = ("open_time", "open", "high", "low", "close", "volume", "close_time",
                 "quote_volume", "trades", "taker_buy_base", "taker_buy_quote", "ignore")
_KLINE_WANT = {"open_time": "int", "open": "float", "high": "float", "low": "float",
               "close": "float", "volume": "float", "close_time": "int"}
_KLINE_NAME = re.compile(r"^(?P<symbol>[^-]+)-(?P<interval>\d+[smhdwM])(?:-.*)?$")
_US_FROM = 10**14   # an epoch in ms this large is in the year 5138: such files count in us


def read_binance(paths, *, interval: str | None = None, on_bad: str = "raise",
                 symbol: str | None = None) -> ReadResult:
    """Read Binance kline CSVs (or zips of one); see the module's notes.

    Parameters
    ----------
    paths : path-like or list of them
        Files (``.csv``, ``.zip``) or folders of them.
    interval, on_bad, symbol
        As for :func:`read_format` (``symbol`` only with one file).
    """
    files: list[Path] = []
    for p in _as_paths(paths):
        if p.is_dir():
            # In a folder, the files named as Binance names them (other files are not klines).
            found = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")
                           and f.suffix.lower() in (".csv", ".zip")
                           and _KLINE_NAME.match(f.name[: -len(f.suffix)]))
            if not found:
                raise ReadError(str(p), None, "no kline files in the folder (named "
                                "SYMBOL-INTERVAL-DATE.csv or .zip, e.g. "
                                "ADABTC-1m-2021-11-27.csv)")
            files.extend(found)
        else:
            files.append(p)
    if symbol is not None and len(files) > 1:
        raise ValueError(f"symbol= names the symbol of one file; these are {len(files)} files")
    builder = _Builder(on_bad, interval)
    for path in files:
        _kline_file(builder, path, symbol)
    return builder.finish()


def _kline_bytes(path: Path) -> tuple[str, bytes]:
    name = str(path)
    try:
        if path.suffix.lower() != ".zip":
            return name, path.read_bytes()
        with zipfile.ZipFile(path) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) != 1:
                raise ReadError(name, None, f"expected one CSV file in the zip, found "
                                f"{len(members)}")
            _not_encrypted(name, members[0])
            return f"{name}/{members[0].filename}", zf.read(members[0])
    except ReadError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error,
            NotImplementedError, RuntimeError) as exc:
        # RuntimeError: what zipfile raises for a member it cannot decrypt.
        raise ReadError(name, None, f"cannot read: {exc}") from None


def _not_encrypted(name: str, member: zipfile.ZipInfo) -> None:
    """A password-protected zip member is an error naming it (zipfile would raise a bare
    RuntimeError)."""
    if member.flag_bits & 0x1:
        raise ReadError(name, None, f"{member.filename} in the zip is encrypted (password "
                        "protected); unzip it first")


def _kline_file(builder: _Builder, path: Path, symbol: str | None) -> None:
    where, data = _kline_bytes(path)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    m = _KLINE_NAME.match(stem)
    sym = symbol or (m.group("symbol") if m else None)
    if sym is None:
        raise ReadError(str(path), None, "cannot tell the symbol from the file name (expected "
                        "SYMBOL-INTERVAL-DATE.csv, e.g. ADABTC-1m-2021-11-27.csv); give "
                        "symbol= (--symbol)")
    try:
        check_symbol(sym)
    except (TypeError, ValueError) as exc:
        raise ReadError(str(path), None, f"bad symbol from the file name: {exc}") from None
    named_ns = None
    if m is not None:
        token = m.group("interval")
        if token[-1] in "dwM":
            raise ReadError(str(path), None, f"{token} klines are not intraday bars (a daily "
                            "bar is a session here); read the 1m (or 1s, 1h ...) files")
        named_ns = parse_interval(token).ns
    src = builder.source(where, "line")
    table = _parse_csv(data, where, _KLINE_FIELDS, _KLINE_WANT, header=True)
    c = table.columns
    opened, closed = c["open_time"], c["close_time"]
    good = np.flatnonzero(table.ok)
    unit_ns = 1_000_000
    if len(good) and abs(int(opened[good[0]])) >= _US_FROM:
        unit_ns = 1_000     # microseconds (Binance spot dumps since 2025)
    unit = "ms" if unit_ns == 1_000_000 else "us"
    limit = _I64_MAX // unit_ns
    table.fail(np.abs(opened) > limit, "time out of range",
               lambda i: f"open_time {int(opened[i])} ({unit}) is out of range: int64 "
                         "nanoseconds hold only 1677-09-21 .. 2262-04-11")
    span = (closed - opened + 1) * unit_ns
    good = np.flatnonzero(table.ok)
    if named_ns is not None:
        iv_ns = named_ns
    elif len(good):
        iv_ns = int(span[good[0]])
    else:
        iv_ns = 60 * _NS
    if iv_ns <= 0 or iv_ns % _NS:
        k = int(good[0])
        raise ReadError(where, int(table.lines[k]), f"close_time {int(closed[k])} and "
                        f"open_time {int(opened[k])} ({unit}) do not make a whole-second bar")
    iv = parse_interval(_interval_name(iv_ns))
    table.fail(span != iv_ns, "wrong close time",
               lambda i: f"close_time {int(closed[i])} is not the last {unit} of a {iv.name} "
                         f"bar opened at open_time {int(opened[i])}")
    builder.problems(src, table.problems)
    builder.result.rows += table.rows
    ok = table.ok
    ts = np.where(ok, opened, 0).astype(np.int64) * unit_ns
    cols = [c[k][ok] for k in PRICE_COLUMNS]
    builder.add(sym, src, iv, ts[ok], cols, table.lines[ok])
