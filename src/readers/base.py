"""The shared pieces of the readers: errors, options, constants, file opening."""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
import zlib
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..bars import PRICE_COLUMNS
from ..intervals import parse_interval
from ..symbols import check_symbol
from ..arrowcols import to_numpy as _arrow_numpy  # noqa: F401 (the readers' import)


CSV_SUFFIXES = (".csv", ".txt", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz")
DATA_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES
TS_FORMATS_EPOCH = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
STAMPS = ("start", "end")
POLICIES = ("raise", "drop")

# Column names recognised without options (compared in lower case).
_TS_NAMES = ("timestamp", "ts", "datetime", "date_time", "time_stamp")
_TS_PREFIXES = ("timestamp", "datetime")
_SYMBOL_NAMES = ("symbol", "ticker")
_DELIMITERS = {",": ",", ";": ";", "\t": "\t", "tab": "\t", "\\t": "\t", "|": "|"}

# An integer epoch is recognised by its number of digits (dates 1973 .. 2286).
_EPOCH_DIGITS = {9: "s", 10: "s", 12: "ms", 13: "ms", 15: "us", 16: "us", 18: "ns", 19: "ns"}
_INT_RE = re.compile(r"^-?\d+$")
_OFFSET_RE = r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"

# Fault codes of the validation kernel (sessiondata._core.validation.FAULTS) named here.
_FAULT_UNSORTED, _FAULT_DUPLICATE, _FAULT_OUTSIDE, _FAULT_MISALIGNED = 4, 5, 6, 7

CHUNK_ROWS = 250_000
_CAREFUL_CHUNK = 65_536

# int64 nanoseconds hold 1677-09-21 00:12:43.145224193 .. 2262-04-11 23:47:16.854775807 UTC
# (the smallest int64 is NaT); times outside are an error, never wrapped around.
_NS_MAX = int(np.iinfo(np.int64).max)
_NS_MIN = -_NS_MAX
_NS_RANGE = "1677-09-21 00:12:43 .. 2262-04-11 23:47:16 UTC"
_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_DAY_NS = 86_400 * 1_000_000_000
# What a damaged or truncated file (plain or compressed) raises while it is read.
_READ_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)


class ReadError(ValueError):
    """A source could not be read; the message names the file, the line (or row) and why.

    Attributes
    ----------
    path : str
        The file (or ``"<DataFrame>"``).
    line : int or None
        The line (CSV, 1 is the header) or row (Parquet, DataFrame) at fault, when one is.
    reason : str
        What is wrong, without the location.
    """

    def __init__(self, path: str, line: int | None, reason: str, unit: str = "line"):
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = self.path if line is None else f"{self.path}, {unit} {line}"
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class ReadOptions:
    """How to read a source; every field has a keyword of the same name in the readers.

    Parameters
    ----------
    interval : str, optional
        The bars' interval (e.g. ``"1m"``), set on the result; required with
        ``stamp="end"``.
    stamp : {"start", "end"}
        Whether a row's time is the bar's open (``start``) or its close (``end``).
    tz : str
        Time zone of naive timestamps (``"UTC"``, ``"Europe/Berlin"`` ...).
    ts_format : str, optional
        ``None``/``"auto"`` (ISO 8601, or an integer epoch recognised by its digits), a
        ``strptime`` format such as ``"%d.%m.%Y %H:%M"``, or an epoch unit ``s``, ``ms``,
        ``us``, ``ns``.
    ts_column : str, optional
        The timestamp column (else auto-detected).
    date_column, time_column : str, optional
        A date column and a time-of-day column whose values are joined by a space.
    symbol_column : str, optional
        The symbol column (else ``symbol`` or ``ticker`` when present).
    symbol : str, optional
        The symbol of a source without a symbol column (else the file name's stem).
    columns : sequence of str or mapping, optional
        A sequence names the fields of each row, in order (``["date", "time", "open",
        ...]``): it replaces the header line when there is one (``header=True``) and is
        required when there is none.  A mapping names the price columns when they differ:
        ``{"open": "Open Price", ...}``.
    header : bool
        Whether the first line of a CSV file is a header (default True).
    delimiter : str, optional
        ``","``, ``";"``, ``"\\t"`` (or ``"tab"``), ``"|"``; detected from the header when
        not given.
    on_bad : {"raise", "drop"}
        Raise at the first malformed or impossible row, or drop and count such rows.
    encoding : str
        Text encoding of CSV files; a UTF-8 byte order mark is always accepted.
    chunk_rows : int
        Rows per chunk.
    """

    interval: str | None = None
    stamp: str = "start"
    tz: str = "UTC"
    ts_format: str | None = None
    ts_column: str | None = None
    date_column: str | None = None
    time_column: str | None = None
    symbol_column: str | None = None
    symbol: str | None = None
    columns: Mapping[str, str] | Sequence[str] | None = None
    header: bool = True
    delimiter: str | None = None
    on_bad: str = "raise"
    encoding: str = "utf-8"
    chunk_rows: int = CHUNK_ROWS

    def checked(self) -> "ReadOptions":
        """The options, validated; raises ValueError naming the bad one."""
        if self.stamp not in STAMPS:
            raise ValueError(f"stamp must be 'start' or 'end', got {self.stamp!r}")
        if self.on_bad not in POLICIES:
            raise ValueError(f"on_bad must be 'raise' or 'drop', got {self.on_bad!r}")
        if self.interval is not None:
            iv = parse_interval(self.interval)
            if iv.is_session:
                raise ValueError("the bars' interval cannot be '1d'; give an intraday interval")
        if self.stamp == "end" and self.interval is None:
            raise ValueError("stamp='end' needs the bars' interval (e.g. interval='1m') to "
                             "shift each bar back to its open")
        _zone(self.tz)
        if self.ts_column and (self.date_column or self.time_column):
            raise ValueError("give either ts_column or date_column + time_column, not both")
        if bool(self.date_column) != bool(self.time_column):
            raise ValueError("date_column and time_column go together")
        if self.delimiter is not None and self.delimiter not in _DELIMITERS:
            raise ValueError(f"delimiter {self.delimiter!r} is not one of , ; tab |")
        if self.chunk_rows < 1:
            raise ValueError(f"chunk_rows must be positive, got {self.chunk_rows}")
        names = self.field_names
        if names is not None:
            if not names or not all(isinstance(c, str) and c.strip() for c in names):
                raise ValueError(f"columns= names every field with a non-empty name; got "
                                 f"{list(names)!r}")
            lowered = [c.strip().lower() for c in names]
            dupes = sorted({c for c in lowered if lowered.count(c) > 1})
            if dupes:
                raise ValueError(f"columns= names {dupes[0]!r} more than once")
        elif not self.header:
            raise ValueError("header=False (--no-header) needs the names of the fields: "
                             "columns=[...] (--columns NAME,NAME,...)")
        if self.renames:
            unknown = set(self.renames) - set(PRICE_COLUMNS)
            if unknown:
                raise ValueError(f"columns= renames only {', '.join(PRICE_COLUMNS)}; got "
                                 f"{', '.join(sorted(unknown))}")
        if self.symbol is not None:
            check_symbol(self.symbol)
        return self

    @property
    def field_names(self) -> tuple[str, ...] | None:
        """The names given for the fields of a row (``columns`` as a sequence), or None."""
        if self.columns is None or isinstance(self.columns, Mapping):
            return None
        if isinstance(self.columns, str):
            return tuple(c.strip() for c in self.columns.split(","))
        return tuple(self.columns)

    @property
    def renames(self) -> Mapping[str, str] | None:
        """Names of the price columns (``columns`` as a mapping), or None."""
        return self.columns if isinstance(self.columns, Mapping) else None

    @property
    def shift_ns(self) -> int:
        """Nanoseconds to subtract from each time (the interval for end-stamped bars)."""
        if self.stamp != "end" or self.interval is None:
            return 0
        return parse_interval(self.interval).ns


def _zone(tz: str) -> zoneinfo.ZoneInfo:
    if isinstance(tz, zoneinfo.ZoneInfo):
        return tz
    try:
        return zoneinfo.ZoneInfo(str(tz))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {tz!r} (use a name such as 'UTC' or "
                         "'Europe/Berlin')") from None


def _is_utc(zone: zoneinfo.ZoneInfo) -> bool:
    return zone.key in ("UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu",
                        "GMT", "Etc/GMT")


def _open_binary(path: Path):
    """A binary stream over a plain or compressed file (of this machine, or of an object
    store: a ``storage.StoreFile``)."""
    if not isinstance(path, Path):
        return path.open_binary()
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".bz2"):
        return bz2.open(path, "rb")
    if name.endswith(".xz"):
        return lzma.open(path, "rb")
    return open(path, "rb")


def _random_access(path: Path):
    """What ``pyarrow.parquet.ParquetFile`` opens: the path, or a store's random-access file."""
    return path if isinstance(path, Path) else path.open_random()


def _text_encoding(encoding: str) -> str:
    """The codec to decode with: UTF-8 with an optional byte order mark for UTF-8."""
    return "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


def _why(exc: BaseException) -> str:
    """An exception as text for a message: its own words, else its type."""
    return str(exc).strip() or type(exc).__name__


def _stem(path: Path) -> str:
    """The file name without its data and compression suffixes."""
    name = path.name
    lower = name.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            name, lower = name[: -len(suffix)], lower[: -len(suffix)]
            break
    for suffix in DATA_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _kind(path: Path) -> str | None:
    lower = path.name.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            lower = lower[: -len(suffix)]
            if lower.endswith(PARQUET_SUFFIXES):
                return None
            break
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


class ReadWarning(UserWarning):
    """A file of a data folder was skipped under ``on_bad="drop"`` (the message names it)."""

