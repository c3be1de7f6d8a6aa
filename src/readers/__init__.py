"""Readers: bars from CSV and Parquet files, folders of them, and pandas or polars DataFrames.

Every reader returns a :class:`ReadResult`: per symbol a sorted, validated :class:`Bars` with
its interval set, plus where each bar came from (file and line), so that a problem found
later (a bar outside every session, say) can still name its line.

Timestamps become int64 nanoseconds UTC, labelled by the bar's open.  What the readers need to
know and never guess:

- which column holds the time (auto-detected by name, case-insensitively: ``timestamp``,
  ``ts``, ``datetime``, ``time``, ``date``, or a ``date`` column and a ``time`` column);
- how it is written: ISO 8601 (the default, with an integer epoch recognised by its number
  of digits), a ``strptime`` format, or an epoch unit ``s``, ``ms``, ``us``, ``ns``;
- the time zone of naive times (default UTC; times with an offset carry their own);
- whether a bar is stamped at its ``start`` (the default) or its ``end``: end-stamped bars
  are shifted back by the base interval, which must then be given.

A malformed row is an error naming the file, the line (``row`` for Parquet and DataFrames)
and what is wrong: a bad number, a missing field, an unparseable time, a time that int64
nanoseconds cannot hold (before 1677-09-21 00:12:43 or after 2262-04-11 23:47:16 UTC; never
wrapped around), a field count that differs from the header's, a duplicate or out-of-order
timestamp, an impossible bar.  A price column of bools, complex numbers or datetimes is
refused whole, and a damaged file (a bad gzip CRC, corrupt compressed data) is an error
naming the file.  With
``on_bad="drop"`` such rows are dropped instead and counted by reason in
:attr:`ReadResult.dropped`.

CSV files are read by pyarrow's multithreaded parser, the columns typed as needed (prices
float64, ISO 8601 times as timestamps).  When it meets anything it cannot vouch for, the file
is read again by a careful line-by-line reader that finds the exact line and says what is
wrong (or drops the row); clean files never pay for it.  Line numbers assume one record per
line (no line breaks inside quoted fields).  Parquet files are read column by column, without
a copy where the types allow.  pandas is not needed (only to read a pandas DataFrame).

The volume column is optional (quotes, indices): without it the bars' volume is NaN and
``Bars.has_volume`` is False.  ``columns=[...]`` names the fields of a row (replacing the
header line, or with ``header=False`` for files without one).

:meth:`ReadResult.check_sessions` tells bars outside the session's hours (on a session's
day: pre- and after-market, after an early close), which are not bad data and are kept apart
in :attr:`ReadResult.outside`, from bars outside every session, which are; the error for
those quotes the time as written in the file and says when ``stamp="end"`` or ``tz=`` would
put the bars inside the sessions.

The package, by job (each module imports only those above it in this list):

- :mod:`.base`: errors, options, constants, opening plain or compressed files;
- :mod:`.layout`: a CSV file's header (delimiter, names) and which column plays which role;
- :mod:`.timeparse`: times to int64 ns UTC, vectorised, with the rows that could not be read;
- :mod:`.result`: :class:`ReadResult` and the collector that joins and validates (once);
- :mod:`.csv_careful`, :mod:`.csv_fast`: the line-by-line CSV reader and pyarrow's;
- :mod:`.parquet`, :mod:`.frames`: Parquet files, pandas and polars DataFrames;
- :mod:`.vendor`: QuantConnect LEAN, Databento DBN and Binance klines;
- :mod:`.folders`: folders (which entries are data), reading ahead, :func:`read_bars`.

This module is the front door: import the readers from ``sessiondata.readers``.
"""

from __future__ import annotations

from .base import (
    CHUNK_ROWS, COMPRESSION_SUFFIXES, CSV_SUFFIXES, DATA_SUFFIXES, PARQUET_SUFFIXES,
    POLICIES, STAMPS, TS_FORMATS_EPOCH, ReadError, ReadOptions, ReadWarning,
)
from .csv_fast import read_csv
from .folders import data_files, read_bars
from .frames import read_frame
from .parquet import read_parquet
from .result import ReadResult, bar_error, store_checked

# Internals that tests and benchmarks reach through the front door.
from .parquet import _read_parquet_into  # noqa: F401
from .result import _Collector  # noqa: F401

__all__ = [
    "CHUNK_ROWS",
    "COMPRESSION_SUFFIXES",
    "CSV_SUFFIXES",
    "DATA_SUFFIXES",
    "PARQUET_SUFFIXES",
    "POLICIES",
    "STAMPS",
    "TS_FORMATS_EPOCH",
    "ReadError",
    "ReadOptions",
    "ReadResult",
    "ReadWarning",
    "bar_error",
    "data_files",
    "read_bars",
    "read_csv",
    "read_frame",
    "read_parquet",
    "store_checked",
]
