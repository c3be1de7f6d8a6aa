"""pandas and polars DataFrames."""

from __future__ import annotations

import datetime as _dt
from dataclasses import replace
from typing import Any

import numpy as np

from ..bars import PRICE_COLUMNS

from .base import _UNIT_NS, ReadError, ReadOptions
from .layout import _detect_layout
from .timeparse import _dt64_ns, _parse_text_rows, _reasons_for, _scale_ns, _strip, _TimeParser
from .result import _Collector, ReadResult


def read_frame(df, **options) -> ReadResult:
    """Read bars from a pandas or polars DataFrame.

    Columns are found as for CSV files.  A pandas frame without a timestamp column may carry
    its times in a DatetimeIndex.  Timestamps may be datetimes (naive ones are in ``tz``),
    epoch numbers or text.  Without a symbol column the symbol is ``symbol=`` (required).
    Errors name the row (the position, from 0).
    """
    opts = ReadOptions(**options).checked()
    collector = _Collector(opts)
    _read_frame_into(df, opts, collector)
    return collector.finish()


def _read_frame_into(df, opts: ReadOptions, collector: _Collector, name="<DataFrame>"):
    columns, index_times = _frame_columns(df)
    names = list(columns)
    try:
        layout = _detect_layout(names, opts, name)
    except ReadError:
        if index_times is None or opts.ts_column or opts.date_column:
            raise
        columns = dict(columns)
        columns["__index__"] = index_times
        layout = _detect_layout(names + ["__index__"],
                                replace(opts, ts_column="__index__"), name)
    if layout.symbol is None and opts.symbol is None:
        raise ReadError(name, None, "the frame has no symbol column; give symbol=")
    symbol = opts.symbol if layout.symbol is None else None
    parser = _TimeParser(opts)
    source = collector.begin(name, "row", layout.has_volume)
    collector.result._parsers[source] = parser
    if symbol is not None:
        collector.declare(symbol)
    n = len(columns[layout.prices["open"]])
    rows = np.arange(n, dtype=np.int64)
    ok = np.ones(n, bool)
    problems: list[tuple[int, str, str]] = []
    cols = []
    for role in PRICE_COLUMNS:
        if role not in layout.prices:       # no volume column
            cols.append(np.full(n, np.nan))
            continue
        col = layout.prices[role]
        values, bad, raw = _frame_numbers(columns[col], col, name)
        for i in np.flatnonzero(bad & ok).tolist():
            problems.append((i, "bad number", f"bad number {raw[i]!r} in column {col!r}"))
        ok &= ~bad
        cols.append(values)
    if layout.ts is not None:
        got = _frame_times(columns[layout.ts], parser, ok, rows, problems, name)
    else:
        d = list(columns[str(layout.date)])
        t = list(columns[str(layout.time)])
        text = _strip(np.array([f"{a} {b}" for a, b in zip(d, t)], dtype=object))
        got = _parse_text_rows(parser, text, ok, rows, problems, name)
    ns, bad, reasons = got
    for i, (category, reason) in zip(np.flatnonzero(bad & ok).tolist(),
                                     _reasons_for(bad, ok, reasons)):
        problems.append((i, category, reason))
    ok &= ~bad
    syms: Any = symbol
    if layout.symbol is not None:
        texts = ["" if _is_missing(v) else str(v).strip() for v in list(columns[layout.symbol])]
        syms = np.array(texts, dtype=object)
        empty = np.array([not s for s in texts], dtype=np.bool_) & ok
        for i in np.flatnonzero(empty).tolist():
            problems.append((i, "missing field", f"missing value in {layout.symbol!r}"))
        ok &= ~empty
    collector.handle(source, problems)
    keep = np.flatnonzero(ok)
    collector.add(source, syms if isinstance(syms, str) else syms[keep], ns[keep],
                  [c[keep] for c in cols], rows[keep], n)
    collector.commit()


def _frame_columns(df) -> tuple[dict[str, Any], Any]:
    """Columns of a pandas or polars frame as array-likes, and a pandas DatetimeIndex."""
    module = type(df).__module__
    if module.startswith("polars"):
        return {str(c): df[c] for c in df.columns}, None
    if hasattr(df, "columns") and hasattr(df, "index"):
        index = df.index
        times = index if str(getattr(index, "dtype", "")).startswith("datetime64") else None
        return {str(c): df[c] for c in df.columns}, times
    raise TypeError(f"expected a pandas or polars DataFrame, got {type(df).__name__}")


# Values that are not real numbers of the data contract, though pandas would take them as
# numbers (True as 1.0, a complex number by its real part, a datetime as its nanoseconds).
_NOT_REAL = (bool, np.bool_, complex, np.complexfloating, _dt.date, _dt.time, _dt.timedelta,
             np.datetime64, np.timedelta64)


def _frame_numbers(values, col: str, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A numeric column as float64, a mask of values that are not numbers, and the values
    (to name a bad one).  A column of bools, complex numbers or datetimes is refused whole:
    like Bars.from_arrays, the readers take only real numbers."""
    dtype = getattr(values, "dtype", None)
    if type(values).__module__.startswith("polars"):
        if str(dtype).startswith(("Boolean", "Date", "Time", "Duration")):  # and Datetime
            raise ReadError(name, None, f"column {col!r} is {dtype}, expected real numbers "
                            "(int or float)")
        values = values.to_numpy()
    elif dtype is not None and getattr(dtype, "kind", None) in ("b", "c", "M", "m"):
        # pandas' nullable boolean, complex and datetime dtypes (with or without NA)
        raise ReadError(name, None, f"column {col!r} is {dtype}, expected real numbers "
                        "(int or float)")
    arr = values.to_numpy() if hasattr(values, "to_numpy") else np.asarray(values)
    if arr.dtype.kind in "iuf":
        return arr.astype(np.float64), np.zeros(len(arr), bool), arr
    if arr.dtype.kind in "bcMm":
        raise ReadError(name, None, f"column {col!r} is {arr.dtype}, expected real numbers "
                        "(int or float)")
    obj = np.asarray(arr, dtype=object)
    nums = np.full(len(obj), np.nan)
    bad = np.zeros(len(obj), bool)
    for i, v in enumerate(obj.tolist()):
        if _is_missing(v):
            continue                    # NaN: validation names it as a non-finite price
        if isinstance(v, _NOT_REAL):
            bad[i] = True
            continue
        try:
            nums[i] = float(v.strip() if isinstance(v, str) else v)
        except (TypeError, ValueError, OverflowError):
            bad[i] = True
            continue
        if nums[i] != nums[i] and not (isinstance(v, str) and v.strip().lower() == "nan"):
            bad[i] = isinstance(v, str)
    return nums, bad, obj


def _is_missing(v) -> bool:
    """None, NaN, and pandas' NaT and NA (without importing pandas)."""
    if v is None:
        return True
    if isinstance(v, float) and v != v:
        return True
    return type(v).__name__ in ("NaTType", "NAType")


def _frame_times(values, parser: _TimeParser, ok, rows, problems, name):
    """Times of a frame column: datetimes, epoch numbers or text."""
    if type(values).__module__.startswith("polars"):
        import polars as pl

        dtype = values.dtype
        if isinstance(dtype, pl.Datetime):
            nulls = values.is_null().to_numpy()
            # The stored integers in their own unit, scaled with a range check (polars'
            # cast_time_unit("ns") raises for the whole column without naming the row).
            raw = np.asarray(values.cast(pl.Int64).fill_null(0).to_numpy(), dtype=np.int64)
            unit = dtype.time_unit or "us"
            ints, oob = _scale_ns(raw, _UNIT_NS[unit])
            for i in np.flatnonzero(nulls & ok).tolist():
                problems.append((i, "missing field", "missing time"))
            ok &= ~nulls
            oob &= ~nulls
            shown = raw.view(f"datetime64[{unit}]")
            return (parser.parse_utc_ns(ints, oob, shown) if dtype.time_zone
                    else parser.parse_naive_ns(ints, oob, shown))
        values = values.to_numpy()
    if type(values).__module__.startswith("pandas"):
        import pandas as pd
    if type(values).__module__.startswith("pandas") and isinstance(values, (pd.Series, pd.Index)):
        dtype = values.dtype
        if isinstance(dtype, pd.DatetimeTZDtype) or str(dtype).startswith("datetime64"):
            nulls = np.asarray(values.isna())
            for i in np.flatnonzero(nulls & ok).tolist():
                problems.append((i, "missing field", "missing time"))
            ok &= ~nulls
            series = pd.Series(values)
            aware = series.dt.tz is not None
            if aware:
                series = series.dt.tz_convert("UTC").dt.tz_localize(None)
            # In its own unit (pandas 3 makes microseconds of most inputs), converted with a
            # range check: a cast to ns would wrap times beyond 2262 into another century.
            arr = series.to_numpy()
            ints, _nat, oob = _dt64_ns(arr)
            return (parser.parse_utc_ns(ints, oob, arr) if aware
                    else parser.parse_naive_ns(ints, oob, arr))
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.dtype.kind == "M":
        ints, nulls, oob = _dt64_ns(arr)
        for i in np.flatnonzero(nulls & ok).tolist():
            problems.append((i, "missing field", "missing time"))
        ok &= ~nulls
        return parser.parse_naive_ns(ints, oob, arr)
    if arr.dtype.kind in "iuf":
        if arr.dtype.kind == "f":
            nulls = np.isnan(arr)
            for i in np.flatnonzero(nulls & ok).tolist():
                problems.append((i, "missing field", "missing time"))
            ok &= ~nulls
        try:
            return parser.parse_epoch(arr)
        except ValueError as exc:
            raise ReadError(name, None, str(exc), "row") from None
    text = np.array(["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                     for v in arr], dtype=object)
    text = _strip(text)
    empty = np.array([not s for s in text], bool) & ok
    for i in np.flatnonzero(empty).tolist():
        problems.append((i, "missing field", "missing time"))
    ok &= ~empty
    return _parse_text_rows(parser, text, ok, rows, problems, name)
