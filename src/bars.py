"""``Bars``: the columnar container of OHLCV bars.

Six NumPy columns of equal length: ``ts`` (int64 ns since the epoch, UTC, the bar's open
time) and ``open``, ``high``, ``low``, ``close``, ``volume`` (float64).  Bars made by
aggregation also carry ``count`` (base bars in each bar, int64) and ``coverage`` (count over
the base slots the bar spans, float64).  Columns are read-only views; building a ``Bars`` from
arrays of the right dtype and layout copies nothing.

Volume is optional.  Quotes and indices have none: build such bars with ``volume=None`` (or
from a source without a volume column).  Their volume column is all NaN and
``has_volume`` is False; validation then does not fault NaN volume (a negative or infinite
one still is), aggregation sums NaN to NaN, and exports write it as missing.  The rule, in
one place: ``has_volume`` is False when ``volume`` is None, or when ``has_volume=False`` is
given, or (when not given) when the volume column is entirely NaN; bars that have volume
fault on any NaN, negative or infinite value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ._core import validation as _validation
from .intervals import Interval, parse_interval

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
COLUMNS = ("ts",) + PRICE_COLUMNS
FAULTS: dict[int, str] = dict(_validation.FAULTS)
_I8, _F8 = np.dtype(np.int64), np.dtype(np.float64)


def _frozen(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


def coerce_ts(values: Any, name: str = "ts") -> np.ndarray:
    """Timestamps as a C-contiguous int64 ns UTC array (no copy when already so).

    Accepts int64 nanoseconds, any ``datetime64`` unit, or a timezone-aware pandas index or
    series (converted to UTC).  Naive datetimes are taken as UTC.
    """
    if (type(values) is np.ndarray and values.dtype == _I8 and values.ndim == 1
            and values.flags.c_contiguous):
        return values    # (the engine's and the readers' own columns: nothing to convert)
    if hasattr(values, "dt") and hasattr(values, "array"):  # pandas Series of datetimes
        values = values.array
    if hasattr(values, "tz") and hasattr(values, "asi8"):  # DatetimeIndex / DatetimeArray
        if values.tz is not None:
            values = values.tz_convert("UTC").tz_localize(None)
        values = np.asarray(values.astype("datetime64[ns]"))
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind == "M":
        nat = np.isnat(arr)
        if nat.any():
            raise ValueError(f"{name} has a missing time (NaT) at row {int(np.argmax(nat))}")
        unit = np.datetime_data(arr.dtype)[0]
        if unit != "ns":
            arr = arr.astype("datetime64[ns]")
        arr = arr.view(np.int64)
    elif arr.dtype != np.int64:
        if arr.dtype.kind in "iu" and arr.size and (arr.min() < -(2**63) or arr.max() >= 2**63):
            raise ValueError(f"{name} does not fit int64 nanoseconds")
        if arr.dtype.kind in "iu" or arr.size == 0:
            arr = arr.astype(np.int64)
        else:
            raise TypeError(
                f"{name} must be int64 nanoseconds or datetime64, got {arr.dtype} of shape "
                f"{arr.shape}"
            )
    return np.ascontiguousarray(arr)


def _optional(module: str, extra: str, feature: str):
    """Import an optional package, or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"Bars.{feature} needs the optional package {module}: "
                          f'pip install "sessiondata[{extra}]"') from None


def _first_value(series) -> Any:
    """The first value of a polars Series or pandas column, for a message."""
    try:
        return series[0] if len(series) else None
    except Exception:  # noqa: BLE001 - only for a message
        return None


def _frame_column(values, name: str) -> np.ndarray:
    """A price or volume column of a DataFrame as numbers; a column of text, dates, bools or
    missing values is refused naming the column (and the first bad row)."""
    arr = values.to_numpy() if hasattr(values, "to_numpy") else np.asarray(values)
    arr = np.asarray(arr)
    if arr.dtype.kind in "iuf":
        return arr
    if arr.dtype.kind == "O":
        for row, v in enumerate(arr.tolist()):
            if v is None or isinstance(v, (str, bytes, bool)) or not isinstance(v, (int, float)):
                raise TypeError(f"column {name!r} must be numeric; row {row} holds {v!r}")
        return arr.astype(np.float64)
    raise TypeError(f"column {name!r} must be numeric, got {arr.dtype}")


def coerce_float(values: Any, name: str) -> np.ndarray:
    """A price or volume column as a C-contiguous float64 array (no copy when already so)."""
    if (type(values) is np.ndarray and values.dtype == _F8 and values.ndim == 1
            and values.flags.c_contiguous):
        return values
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype != np.float64:
        if arr.dtype.kind not in "iuf" and not (arr.size == 0 and arr.dtype.kind == "O"):
            raise TypeError(f"{name} must be numeric, got {arr.dtype} of shape {arr.shape}")
        arr = arr.astype(np.float64)
    return np.ascontiguousarray(arr)


def describe_row(ts: np.ndarray, cols: dict[str, np.ndarray], row: int) -> str:
    """``ts=2024-01-02T14:31:00Z open=1.1 ...`` for an error message."""
    parts = [f"ts={np.datetime64(int(ts[row]), 'ns')}Z"]
    parts += [f"{k}={float(cols[k][row])!r}" for k in PRICE_COLUMNS if k in cols]
    return " ".join(parts)


class BadBarError(ValueError):
    """A bar broke the data contract.  ``row`` is its index in the input, ``fault`` its code."""

    def __init__(self, message: str, row: int, fault: int):
        super().__init__(message)
        self.row = row
        self.fault = fault


def raise_first_fault(ts, cols, row: int, fault: int, where: str = "") -> None:
    """Raise BadBarError for ``row`` with a message that says what and where."""
    prefix = f"{where}: " if where else ""
    raise BadBarError(
        f"{prefix}row {row}: {FAULTS.get(fault, 'bad bar')} ({describe_row(ts, cols, row)})",
        row,
        fault,
    )


class Bars:
    """Columnar OHLCV bars, sorted by open time.

    Build with :meth:`from_arrays` or :meth:`from_pandas`; every constructor validates by
    default (finite prices, high/low consistent with open/close, volume >= 0, strictly
    increasing timestamps) and raises a ``ValueError`` naming the first offending row.
    """

    __slots__ = ("ts", "open", "high", "low", "close", "volume", "count", "coverage", "interval",
                 "has_volume")

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    count: np.ndarray | None
    coverage: np.ndarray | None
    interval: Interval | None
    has_volume: bool

    def __init__(self, ts, open, high, low, close, volume=None, *, count=None, coverage=None,
                 interval=None, validate=True, has_volume: bool | None = None):
        ts = coerce_ts(ts)
        n = ts.shape[0]
        if volume is None:
            volume = np.full(n, np.nan)
            has_volume = False
        cols = {name: coerce_float(v, name) for name, v in
                zip(PRICE_COLUMNS, (open, high, low, close, volume))}
        for name, arr in cols.items():
            if arr.shape[0] != n:
                raise ValueError(f"column {name!r} has {arr.shape[0]} rows, ts has {n}")
        if has_volume is None:
            has_volume = not (n and np.isnan(cols["volume"]).all())
        if validate and n:
            first, _counts = _validation.validate_bars(
                ts, cols["open"], cols["high"], cols["low"], cols["close"], cols["volume"],
                _EMPTY_I64, _EMPTY_I64, 0, _EMPTY_U8, True, volume_optional=not has_volume,
            )
            if first >= 0:
                fault = next(code for code, c in enumerate(_counts) if c)
                raise_first_fault(ts, cols, first, fault)
        self.ts = _frozen(ts)
        for name, arr in cols.items():
            setattr(self, name, _frozen(arr))
        if count is not None:
            count = np.ascontiguousarray(count, dtype=np.int64)
            if count.shape != (n,):
                raise ValueError(f"count has shape {count.shape}, expected ({n},)")
            count = _frozen(count)
        if coverage is not None:
            coverage = np.ascontiguousarray(coverage, dtype=np.float64)
            if coverage.shape != (n,):
                raise ValueError(f"coverage has shape {coverage.shape}, expected ({n},)")
            coverage = _frozen(coverage)
        self.count = count
        self.coverage = coverage
        self.interval = None if interval is None else parse_interval(interval)
        self.has_volume = bool(has_volume)

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def from_arrays(cls, ts, open, high, low, close, volume=None, *, interval=None,
                    validate: bool = True, has_volume: bool | None = None) -> "Bars":
        """Bars from six arrays; zero-copy when they are contiguous int64/float64.

        Parameters
        ----------
        ts : array_like
            Open times: int64 ns since the epoch (UTC), or datetime64.
        open, high, low, close : array_like
            Numeric columns, converted to float64.
        volume : array_like, optional
            Numeric, converted to float64.  None (or all NaN) for bars without volume: the
            column is then NaN and ``has_volume`` False (see the module's volume rule).
        interval : str, optional
            The bar interval (e.g. ``"1m"``); ``resample`` and ``find_gaps`` use it as the
            base and infer it from the data when it is not given.
        validate : bool, default True
            Check the data contract and raise ``ValueError`` at the first bad row.
        has_volume : bool, optional
            Whether the bars carry volume; by default False only when ``volume`` is None or
            all NaN.
        """
        return cls(ts, open, high, low, close, volume, interval=interval, validate=validate,
                   has_volume=has_volume)

    @classmethod
    def from_dict(cls, columns: dict, **kwargs) -> "Bars":
        """Bars from a mapping with the keys ``ts, open, high, low, close, volume`` (and
        optionally ``count``, ``coverage``)."""
        missing = [c for c in COLUMNS if c not in columns and c != "volume"]
        if missing:
            raise ValueError(f"missing columns: {', '.join(missing)}")
        return cls(*(columns.get(c) for c in COLUMNS), count=columns.get("count"),
                   coverage=columns.get("coverage"), **kwargs)

    @classmethod
    def empty(cls, interval=None) -> "Bars":
        """No bars."""
        return cls(_EMPTY_I64, *([_EMPTY_F64] * 5), interval=interval, validate=False)

    @classmethod
    def from_pandas(cls, df: "pd.DataFrame", *, ts_column: str | None = None, interval=None,
                    validate: bool = True) -> "Bars":
        """Bars from a DataFrame with ``open, high, low, close, volume`` columns.

        The timestamps come from ``ts_column`` when given, else from a ``ts`` column, else from
        a DatetimeIndex.  Timezone-aware timestamps are converted to UTC; naive ones are taken
        as UTC.
        """
        missing = [c for c in PRICE_COLUMNS if c not in df.columns and c != "volume"]
        if missing:
            raise ValueError(f"DataFrame lacks columns: {', '.join(missing)} "
                             f"(has {', '.join(map(str, df.columns))})")
        label = ts_column if ts_column is not None else "ts"
        if ts_column is not None:
            if ts_column not in df.columns:
                raise ValueError(f"DataFrame has no column {ts_column!r}")
            ts = df[ts_column]
        elif "ts" in df.columns:
            ts = df["ts"]
        else:
            ts = df.index
            label = "the index"
            if getattr(ts.dtype, "kind", None) != "M":
                raise ValueError(
                    "DataFrame needs a 'ts' column (or ts_column=) or a DatetimeIndex; it has "
                    f"a {type(ts).__name__} and columns {', '.join(map(str, df.columns))}")
        ts = coerce_ts(ts, label)
        prices: list[np.ndarray | None] = [_frame_column(df[c], c) for c in PRICE_COLUMNS
                                           if c in df.columns]
        if "volume" not in df.columns:
            prices.append(None)
        return cls(ts, *prices, interval=interval, validate=validate)

    @classmethod
    def from_polars(cls, df, *, ts_column: str = "ts", interval=None,
                    validate: bool = True) -> "Bars":
        """Bars from a polars DataFrame (``ts`` as Datetime or int64 ns; ``volume`` optional).

        A ``ts`` column of another type (text, say) is a TypeError and a missing time a
        ValueError, each naming the column (and the row)."""
        pl = _optional("polars", "polars", "from_polars")

        if ts_column not in df.columns:
            raise ValueError(f"polars DataFrame has no column {ts_column!r}")
        missing = [c for c in PRICE_COLUMNS if c not in df.columns and c != "volume"]
        if missing:
            raise ValueError(f"polars DataFrame lacks columns: {', '.join(missing)} "
                             f"(has {', '.join(map(str, df.columns))})")
        ts = df[ts_column]
        if ts.dtype.is_integer():
            pass
        elif isinstance(ts.dtype, pl.Datetime):
            ts = ts.dt.convert_time_zone("UTC") if getattr(ts.dtype, "time_zone", None) else ts
            # Stored integers in their own unit, scaled with a range check (polars' own cast
            # raises for the whole column without naming the row).
            unit = ts.dtype.time_unit or "us"
            ts = ts.cast(pl.Int64)
        else:
            raise TypeError(f"column {ts_column!r} must be Datetime or int64 nanoseconds, got "
                            f"{ts.dtype} (first value {_first_value(ts)!r}); parse it first, "
                            "e.g. with .str.to_datetime(), or read the frame with "
                            "sessiondata.readers.read_frame")
        if ts.null_count():
            row = int(ts.is_null().arg_max())
            raise ValueError(f"column {ts_column!r} has a missing time (null) at row {row}")
        raw = np.asarray(ts.to_numpy())
        if isinstance(df[ts_column].dtype, pl.Datetime) and unit != "ns":
            factor = {"us": 1_000, "ms": 1_000_000}[unit]
            limit = np.iinfo(np.int64).max // factor
            over = np.flatnonzero((raw > limit) | (raw < -limit))
            if len(over):
                raise ValueError(f"column {ts_column!r}: the time at row {int(over[0])} does "
                                 "not fit int64 nanoseconds (1677-09-21 .. 2262-04-11)")
            raw = raw.astype(np.int64) * factor
        prices: list[np.ndarray | None] = [_frame_column(df[c], c) for c in PRICE_COLUMNS
                                           if c in df.columns]
        if "volume" not in df.columns:
            prices.append(None)
        return cls(coerce_ts(raw, ts_column), *prices, interval=interval, validate=validate)

    # -- conversions ----------------------------------------------------------------------

    def columns(self) -> dict[str, np.ndarray]:
        """The columns by name (read-only views)."""
        out = {name: getattr(self, name) for name in COLUMNS}
        if self.count is not None:
            out["count"] = self.count
        if self.coverage is not None:
            out["coverage"] = self.coverage
        return out

    def to_pandas(self, tz: str | None = "UTC") -> "pd.DataFrame":
        """A DataFrame indexed by a DatetimeIndex named ``ts`` (tz-aware, ``tz``)."""
        pd = _optional("pandas", "pandas", "to_pandas")

        index = pd.DatetimeIndex(self.ts.view("datetime64[ns]"), name="ts")
        if tz is not None:
            index = index.tz_localize("UTC").tz_convert(tz)
        data = {k: v for k, v in self.columns().items() if k != "ts"}
        return pd.DataFrame(data, index=index)

    def to_arrow(self) -> "pa.Table":
        """A pyarrow Table (``ts`` as timestamp[ns, UTC]); zero-copy for the columns."""
        pa = _optional("pyarrow", "arrow", "to_arrow")
        arrays = [pa.array(self.ts.view("datetime64[ns]"), type=pa.timestamp("ns", tz="UTC"))]
        names = ["ts"]
        for k, v in self.columns().items():
            if k != "ts":
                arrays.append(pa.array(v))
                names.append(k)
        return pa.Table.from_arrays(arrays, names=names)

    def to_polars(self):
        """A polars DataFrame (``ts`` as Datetime('ns', 'UTC'))."""
        pl = _optional("polars", "polars", "to_polars")

        data = {k: v for k, v in self.columns().items()}
        df = pl.DataFrame(data)
        return df.with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))

    # -- the container --------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def __getitem__(self, index) -> "Bars":
        if not isinstance(index, slice):
            raise TypeError("Bars supports slicing only (bars[a:b]); use .ts[i] for one value")
        out = object.__new__(Bars)
        for name in COLUMNS:
            setattr(out, name, getattr(self, name)[index])
        out.has_volume = self.has_volume
        out.count = None if self.count is None else self.count[index]
        out.coverage = None if self.coverage is None else self.coverage[index]
        out.interval = self.interval
        return out

    def _made(self, pick: Any) -> "Bars":
        """Bars of the same kind whose every column (count and coverage too) is ``pick`` of
        this one's; no check (the rows were checked as these)."""
        out = object.__new__(Bars)
        for name in COLUMNS:
            setattr(out, name, _frozen(pick(getattr(self, name))))
        out.count = None if self.count is None else _frozen(pick(self.count))
        out.coverage = None if self.coverage is None else _frozen(pick(self.coverage))
        out.has_volume = self.has_volume
        out.interval = self.interval
        return out

    def take(self, rows: np.ndarray) -> "Bars":
        """The bars at ``rows``, a boolean mask or indices (count and coverage kept; the
        caller keeps the times increasing)."""
        rows = np.asarray(rows)
        if rows.dtype == bool and rows.shape != (len(self),):
            raise ValueError(f"a mask of {rows.shape} rows for {len(self)} bars")
        return self._made(lambda a: a[rows])

    def copy(self) -> "Bars":
        """The same bars in arrays of their own (not views of a larger input)."""
        return self._made(np.copy)

    def with_coverage(self, coverage: np.ndarray) -> "Bars":
        """The same bars with another ``coverage`` column (a bucket cut by a scored span)."""
        coverage = np.ascontiguousarray(coverage, dtype=np.float64)
        if coverage.shape != (len(self),):
            raise ValueError(f"coverage has shape {coverage.shape}, expected ({len(self)},)")
        out = self._made(lambda a: a)
        out.coverage = _frozen(coverage)
        return out

    @staticmethod
    def concat(parts: Sequence["Bars"], *, validate: bool = False) -> "Bars":
        """The bars of ``parts`` one after the other, as one (count and coverage kept when
        every part has them).  ``validate`` checks the whole again (the order across parts
        included); otherwise the caller knows the parts are in order."""
        if not parts:
            raise ValueError("Bars.concat needs at least one part")
        first = parts[0]
        if len(parts) == 1 and not validate:
            return first
        cols = {name: np.concatenate([getattr(b, name) for b in parts]) for name in COLUMNS}
        count = (np.concatenate([b.count for b in parts])
                 if all(b.count is not None for b in parts) else None)
        coverage = (np.concatenate([b.coverage for b in parts])
                    if all(b.coverage is not None for b in parts) else None)
        return Bars(**cols, count=count, coverage=coverage, interval=first.interval,
                    validate=validate, has_volume=first.has_volume)

    @property
    def nbytes(self) -> int:
        """Bytes of the columns."""
        return sum(v.nbytes for v in self.columns().values())

    def equals(self, other: "Bars") -> bool:
        """Same columns, same values (NaN equal to NaN)."""
        a, b = self.columns(), other.columns()
        return a.keys() == b.keys() and all(
            np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f") for k in a)

    def __repr__(self) -> str:
        iv = f", interval={self.interval.name!r}" if self.interval else ""
        if len(self) == 0:
            return f"Bars(0 bars{iv})"
        first = np.datetime64(int(self.ts[0]), "ns")
        last = np.datetime64(int(self.ts[-1]), "ns")
        return f"Bars({len(self)} bars{iv}, {first}Z .. {last}Z)"


_EMPTY_I64 = np.empty(0, np.int64)
_EMPTY_F64 = np.empty(0, np.float64)
_EMPTY_U8 = np.empty(0, np.uint8)
