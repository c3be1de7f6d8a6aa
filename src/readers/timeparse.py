"""Time parsing, vectorised: ISO 8601, strptime formats and epoch numbers to int64 ns UTC,
with the rows that could not be parsed and why."""

from __future__ import annotations

import datetime as _dt
import re

import numpy as np

from ..calendar import resolve_wall_ns

from .base import (
    _arrow_numpy, _EPOCH_DIGITS, _INT_RE, _is_utc, _NS_MAX, _NS_MIN, _NS_RANGE, _OFFSET_RE, _zone,
    ReadError, ReadOptions, TS_FORMATS_EPOCH,
)


class _TimeParser:
    """Turns a source's time values into int64 ns UTC.  The way to read them (ISO, epoch
    unit, format) is settled once, from the first value, and then holds for the source."""

    def __init__(self, opts: ReadOptions):
        self.fmt = None if opts.ts_format in (None, "", "auto") else opts.ts_format
        self.zone = _zone(opts.tz)
        self.shift = opts.shift_ns
        self.mode: str | None = None      # "iso", "format", or an epoch unit
        self.aware: bool | None = None     # times carry an offset
        # Whether any time of the source was naive (read as wall clock in ``zone``): the
        # parse paths decide it value by value (a Parquet timestamp type, an ISO text).
        self.naive_seen = False
        if self.fmt in TS_FORMATS_EPOCH:
            self.mode = self.fmt
        elif self.fmt is not None:
            self.mode = "format"
            self.aware = "%z" in self.fmt or "%Z" in self.fmt

    def settle(self, first: str) -> None:
        """Settle ISO vs. epoch from the first value (a stripped string)."""
        if self.mode is not None:
            return
        if _INT_RE.match(first):
            digits = len(first.lstrip("-"))
            unit = _EPOCH_DIGITS.get(digits)
            if unit is None and digits != 8:  # 8 digits: ISO basic date 20240102
                raise ValueError(f"cannot tell the epoch unit of {first!r} ({digits} digits); "
                                 "give ts_format (--ts-format) s, ms, us or ns")
            if unit is not None:
                self.mode = unit
                return
        self.mode = "iso"
        self.aware = re.search(_OFFSET_RE, first) is not None and _looks_timed(first)

    def describe(self) -> str:
        if self.mode in TS_FORMATS_EPOCH:
            return f"epoch {self.mode}"
        if self.mode == "format":
            return f"format {self.fmt!r}"
        return "ISO 8601"

    def parse_text(self, values) -> tuple[np.ndarray, np.ndarray, list]:
        """Parse stripped strings (an object array, or a pyarrow string array); returns (ns,
        bad mask, (category, reason) of each bad row in order).

        Empty strings are not handled here (the caller reports them as missing fields).
        Clean columns are parsed by pyarrow in one vectorised call; a column it refuses is
        parsed value by value, to say which values are bad and why.
        """
        import pyarrow as pa

        n = len(values)
        if n == 0:
            return np.empty(0, np.int64), np.zeros(0, bool), []
        arrow = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else None
        if self.mode is None:
            self.settle(str(values[0] if arrow is None else values[0].as_py()))
        if arrow is None:
            arrow = pa.array(np.asarray(values, dtype=object), type=pa.string())
        if self.mode in TS_FORMATS_EPOCH:
            nums, bad_num = _text_numbers(arrow)
            ns, bad, oob = _epoch_ns(nums, self.mode)
            bad |= bad_num
            return self._finish(ns, bad, _pylist(values), aware=True, out_of_range=oob)
        if self.mode == "format":
            ns, bad, oob = _strptime_ns(arrow, str(self.fmt), bool(self.aware))
            return self._finish(ns, bad, _pylist(values) if bad.any() else values,
                                aware=bool(self.aware), out_of_range=oob)
        got = _arrow_iso_ns(arrow, bool(self.aware))
        if got is not None:
            return self._finish(got, np.zeros(n, bool), values, aware=bool(self.aware))
        texts = _pylist(values)
        ns, bad, oob, other_kind = _iso_ns_each(texts, bool(self.aware))
        return self._finish(ns, bad, texts, aware=bool(self.aware), offset_mismatch=other_kind,
                            out_of_range=oob)

    def parse_naive_ns(self, ns: np.ndarray, out_of_range=None, shown=None
                       ) -> tuple[np.ndarray, np.ndarray, list]:
        """Naive datetimes as int64 ns (wall clock in ``tz``) -> UTC.

        ``out_of_range`` marks times that do not fit int64 ns (their ``ns`` is ignored);
        ``shown`` holds the original values, to name them in the reasons.
        """
        return self._finish(ns.astype(np.int64, copy=False), np.zeros(len(ns), bool), None,
                            aware=False, out_of_range=out_of_range, shown=shown)

    def parse_utc_ns(self, ns: np.ndarray, out_of_range=None, shown=None
                     ) -> tuple[np.ndarray, np.ndarray, list]:
        """Times already in UTC ns (``out_of_range`` and ``shown`` as for parse_naive_ns)."""
        return self._finish(ns.astype(np.int64, copy=False), np.zeros(len(ns), bool), None,
                            aware=True, out_of_range=out_of_range, shown=shown)

    def parse_epoch(self, nums: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
        """Numeric epoch values (unit from ts_format, else from the first value's digits)."""
        if self.mode is None:
            finite = nums[np.isfinite(nums)] if nums.dtype.kind == "f" else nums
            self.settle(str(int(finite[0])) if len(finite) else "0")
        if self.mode not in TS_FORMATS_EPOCH:
            raise ValueError(f"numeric times cannot be read as {self.describe()}; give "
                             "ts_format (--ts-format) s, ms, us or ns")
        ns, bad, oob = _epoch_ns(nums, self.mode)
        return self._finish(ns, bad, None, aware=True, out_of_range=oob, shown=nums)

    def _finish(self, ns, bad, values, *, aware: bool, offset_mismatch=None,
                out_of_range=None, shown=None):
        """Localise naive times, shift end stamps; say why each bad row is bad.

        Returns (ns, bad mask, list of (category, reason) for the bad rows in order).
        """
        reasons_by_row: dict[int, str] = {}
        if offset_mismatch is not None:
            for i in np.flatnonzero(offset_mismatch).tolist():
                reasons_by_row[i] = (
                    f"unparseable time {_text_at(values, i)!r}: "
                    + ("no UTC offset, while the first time has one" if self.aware
                       else "has a UTC offset, while the first time has none"))
        oob = np.zeros(len(ns), bool) if out_of_range is None else out_of_range.copy()
        bad = bad | oob
        if not aware and len(ns):
            self.naive_seen = True
        if not aware and not _is_utc(self.zone):
            wall = ns
            ns, local_bad, local_oob = _localize(wall, bad, self.zone)
            for i in np.flatnonzero(local_bad).tolist():
                label = _text_at(values, i) if values is not None else _shown(shown, i)
                if label is None:
                    label = _ns_text(int(wall[i]))
                reasons_by_row[i] = (f"time {label!r} does not exist or is ambiguous in "
                                     f"{self.zone.key} (a daylight-saving change); give UTC "
                                     "times or times with an offset")
            oob = oob | local_oob
            bad = bad | local_bad | local_oob
        under = None
        if self.shift:
            ok = ~bad
            under = ok & (ns < _NS_MIN + self.shift)   # the open would be before 1677
            if under.any():
                oob = oob | under
                bad = bad | under
                ok = ~bad
            if not ns.flags.writeable:
                ns = ns.copy()
            ns[ok] -= self.shift
        reasons = []
        for i in np.flatnonzero(bad).tolist():
            if i in reasons_by_row:
                reasons.append(("unparseable time", reasons_by_row[i]))
            elif oob[i]:
                label = _text_at(values, i) if values is not None else _shown(shown, i)
                what = "time" if label is None else f"time {label!r}"
                if under is not None and under[i]:
                    what = f"the open of the bar ending at {what}"
                reasons.append(("time out of range",
                                f"{what} is out of range: int64 nanoseconds hold only "
                                f"{_NS_RANGE}"))
            elif values is not None:
                reasons.append(("unparseable time", f"unparseable time {_text_at(values, i)!r} "
                                f"(expected {self.describe()})"))
            else:
                label = _shown(shown, i)
                reasons.append(("unparseable time", "unparseable time"
                                + ("" if label is None else f" {label!r}")))
        return ns, bad, reasons


def _shown(shown, i: int) -> str | None:
    """The original value ``shown[i]`` as text, for a message (None when not known)."""
    if shown is None:
        return None
    value = shown[i]
    if isinstance(value, np.datetime64):
        return _dt64_text(value)
    return str(value.item() if isinstance(value, np.generic) else value)


def _text_at(values, i: int):
    """The i-th value of a list, object array or pyarrow array, as Python text."""
    value = values[i]
    return value.as_py() if hasattr(value, "as_py") else value


def _pylist(values) -> list:
    """Values of an object array or pyarrow array as a Python list."""
    return values.to_pylist() if hasattr(values, "to_pylist") else list(values)


def _ns_text(ns: int) -> str:
    """``2024-03-10 02:30:00`` (with a fraction when there is one) of int64 ns."""
    return _dt64_text(np.datetime64(ns, "ns"))


def _dt64_text(value: np.datetime64) -> str:
    """A datetime64 as ``YYYY-MM-DD HH:MM:SS[.ffffff[fff]]`` (any unit and range)."""
    unit, _count = np.datetime_data(value.dtype)
    if np.isnat(value):
        return "NaT"
    if unit in ("Y", "M", "W", "D", "h", "m", "s"):
        text = str(value.astype("datetime64[s]")).replace("T", " ")
        return text if unit not in ("Y", "M", "W", "D") else text + (
            " 00:00:00" if len(text) == 10 else "")
    text = str(value.astype("datetime64[ns]") if unit in ("ms", "us", "ns") and
               abs(int(value.astype("datetime64[us]").astype(np.int64))) < 9 * 10**15
               else value).replace("T", " ")
    if "." in text:
        head, frac = text.split(".", 1)
        frac = frac.rstrip("0")
        if not frac:
            return head
        return f"{head}.{frac.ljust(6, '0') if len(frac) <= 6 else frac.ljust(9, '0')}"
    return text


def _looks_timed(text: str) -> bool:
    """A date followed by a time (so a trailing '-05' is an offset, not a day)."""
    return re.search(r"\d[T ]\d", text) is not None


def _scale_ns(raw: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer times in units of ``factor`` ns -> int64 ns, with a mask of those that do not
    fit (their ns is 0).  Vectorised: the bounds are checked before multiplying."""
    raw = np.asarray(raw)
    if raw.dtype != np.int64:
        raw = raw.astype(np.int64)
    if factor == 1:
        oob = raw == np.iinfo(np.int64).min
        return np.where(oob, 0, raw), oob
    limit = _NS_MAX // factor
    oob = (raw > limit) | (raw < -limit)
    ns = np.where(oob, 0, raw) * factor if oob.any() else raw * factor
    return ns, oob


def _dt64_ns(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A numpy datetime64 array of any unit -> (int64 ns, NaT mask, out-of-range mask);
    NaT and out-of-range times have ns 0.  Never wraps around (unlike ``astype``)."""
    arr = np.asarray(arr)
    nat = np.isnat(arr)
    unit, count = np.datetime_data(arr.dtype)
    if unit == "generic":
        return np.zeros(len(arr), np.int64), np.ones(len(arr), bool), np.zeros(len(arr), bool)
    if unit in ("ps", "fs", "as"):     # finer than ns: a narrower range than int64 ns
        ns = arr.astype("datetime64[ns]").view(np.int64).copy()
        ns[nat] = 0
        return ns, nat, np.zeros(len(arr), bool)
    if unit in ("Y", "M"):             # calendar units: through seconds
        arr = arr.astype("datetime64[s]")
        unit, count = "s", 1
    factor = int(np.timedelta64(count, unit) // np.timedelta64(1, "ns"))  # type: ignore[call-overload]
    raw = arr.view(np.int64)
    if nat.any():
        raw = np.where(nat, 0, raw)
    ns, oob = _scale_ns(raw, factor)
    return ns, nat, oob & ~nat


_ISO_RE = re.compile(
    r"^(\d{4})-?(\d{2})-?(\d{2})"
    r"(?:[T ](\d{2})(?::?(\d{2})(?::?(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?)?$")


def _arrow_iso_ns(arr, aware: bool) -> np.ndarray | None:
    """ISO 8601 text parsed by pyarrow as int64 ns (UTC when ``aware``, else wall times), or
    None when pyarrow refuses any value (the caller then parses value by value)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        got = pc.cast(arr, pa.timestamp("ns", "UTC" if aware else None))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if got.null_count:
        return None
    return _arrow_i64(got)


def _arrow_i64(arr) -> np.ndarray:
    """An arrow integer or timestamp array without nulls as int64 numpy (zero-copy for one
    chunk of int64 or timestamp)."""
    out = _arrow_numpy(arr)
    return out if out.dtype == np.int64 else out.astype(np.int64)


def _iso_one(text: str) -> tuple[int | None, bool, bool]:
    """One ISO 8601 time -> (ns or None when unparseable, has an offset, out of range).

    Naive times are wall-clock ns; times with an offset are UTC ns."""
    m = _ISO_RE.match(text)
    if m is None:
        return None, False, False
    y, mo, d, hh, mi, ss, frac, z, sign, oh, om = m.groups()
    try:
        day = _dt.date(int(y), int(mo), int(d)).toordinal() - 719163
    except ValueError:
        return None, False, False
    h, minute, sec = int(hh or 0), int(mi or 0), int(ss or 0)
    if h > 23 or minute > 59 or sec > 59:
        return None, False, False
    nanos = int((frac or "")[:9].ljust(9, "0")) if frac else 0
    ns = ((day * 24 + h) * 60 + minute) * 60 + sec
    ns = ns * 1_000_000_000 + nanos
    aware = bool(z or sign)
    if sign:
        if int(oh) > 23 or int(om or 0) > 59:
            return None, False, False
        off = (int(oh) * 60 + int(om or 0)) * 60 * 1_000_000_000
        ns = ns - off if sign == "+" else ns + off
    if not -_NS_MAX <= ns <= _NS_MAX:
        return 0, aware, True
    return ns, aware, False


def _iso_ns_each(texts: list, aware: bool):
    """ISO 8601 times one by one: (ns, bad, out of range, of the other kind than ``aware``)."""
    n = len(texts)
    ns = np.zeros(n, np.int64)
    bad = np.zeros(n, bool)
    oob = np.zeros(n, bool)
    other = np.zeros(n, bool)
    for i, text in enumerate(texts):
        value, has_offset, out = _iso_one(text) if isinstance(text, str) else (None, False, False)
        if value is None:
            bad[i] = True
        elif has_offset != aware and _looks_timed(text):
            bad[i] = other[i] = True
        elif out:
            bad[i] = oob[i] = True
        else:
            ns[i] = value
    return ns, bad, oob, other


def _text_numbers(arr) -> tuple[np.ndarray, np.ndarray]:
    """Numbers written as text (a pyarrow string array) -> int64 or float64 numpy, and a mask
    of the values that are no number."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for typ in (pa.int64(), pa.float64()):
        try:
            got = pc.cast(arr, typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        if not got.null_count:
            return got.to_numpy(zero_copy_only=False), np.zeros(len(arr), bool)
    texts = _pylist(arr)
    ints = all(isinstance(t, str) and _INT_RE.match(t.strip()) for t in texts)
    out = np.zeros(len(texts), np.float64 if not ints else object)
    bad = np.zeros(len(texts), bool)
    for i, t in enumerate(texts):
        try:
            out[i] = int(t) if ints else float(t)
        except (TypeError, ValueError):
            bad[i] = True
    if ints:        # beyond int64: out of range, told apart by _epoch_ns
        big = np.array([abs(v) > _NS_MAX for v in out.tolist()], bool)
        vals = np.where(big, 0, out).astype(np.int64)
        if big.any():
            vals = vals.astype(np.float64)
            vals[big] = np.array([float(v) for v in out[big].tolist()])
        return vals, bad
    return out, bad


def _strptime_ns(arr, fmt: str, aware: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times in a strptime format -> (int64 ns, bad mask, out-of-range mask): pyarrow parses
    the column, Python's strptime the values pyarrow refused (and names them bad)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(arr)
    ns = np.zeros(n, np.int64)
    todo = np.ones(n, bool)
    try:
        got = pc.strptime(arr, format=fmt, unit="ns", error_is_null=True)
        if aware and got.type.tz is None:
            raise pa.ArrowInvalid("offsets not kept")
        valid = ~np.asarray(got.is_null().to_numpy(zero_copy_only=False), bool)
        ns[valid] = _arrow_i64(got.fill_null(0))[valid]
        todo = ~valid
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    bad = np.zeros(n, bool)
    oob = np.zeros(n, bool)
    if todo.any():
        texts = _pylist(arr)
        for i in np.flatnonzero(todo).tolist():
            try:
                t = _dt.datetime.strptime(texts[i], fmt)
            except (TypeError, ValueError):
                bad[i] = True
                continue
            if aware:
                if t.tzinfo is None:
                    bad[i] = True
                    continue
                t = t.astimezone(_dt.timezone.utc).replace(tzinfo=None)
            elif t.tzinfo is not None:
                t = t.replace(tzinfo=None)
            us = (t - _dt.datetime(1970, 1, 1)) // _dt.timedelta(microseconds=1)
            value = us * 1000
            if not -_NS_MAX <= value <= _NS_MAX:
                bad[i] = oob[i] = True
            else:
                ns[i] = value
    return ns, bad, oob


def _epoch_ns(nums: np.ndarray, unit: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epoch numbers (int or float) in ``unit`` -> int64 ns, a mask of bad values (not a
    finite number, or out of range) and a mask of those out of range."""
    factor = TS_FORMATS_EPOCH[unit]
    nums = np.asarray(nums)
    limit = _NS_MAX // factor
    if nums.dtype.kind in "iu":
        bad = (nums > limit) | (nums < -limit)
        ns = np.where(bad, 0, nums).astype(np.int64) * factor
        return ns, bad, bad.copy()
    nums = nums.astype(np.float64)
    finite = np.isfinite(nums)
    with np.errstate(invalid="ignore"):
        oob = finite & (np.abs(nums) > limit)
    bad = ~finite | oob
    ns = np.zeros(len(nums), np.int64)
    ok = ~bad
    if factor == 1:
        ns[ok] = nums[ok].astype(np.int64)
    else:
        # limit * factor can round past int64 in float: check the product, too.
        scaled = np.round(nums[ok] * factor)
        over = np.abs(scaled) >= 2.0**63
        if over.any():
            idx = np.flatnonzero(ok)[over]
            oob[idx] = bad[idx] = True
            ok[idx] = False
            scaled = scaled[~over]
        ns[ok] = scaled.astype(np.int64)
    return ns, bad, oob


def _localize(wall_ns: np.ndarray, bad: np.ndarray, zone
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Naive wall times in ``zone`` -> UTC ns; returns the UTC ns, a mask of nonexistent or
    ambiguous times and a mask of times whose UTC falls outside int64 ns (rows already
    ``bad`` are in neither).  zoneinfo through :func:`calendar.resolve_wall_ns`."""
    safe = np.where(bad, 0, wall_ns)
    utc, nonexistent, ambiguous, oob = resolve_wall_ns(safe, zone)
    out_bad = (nonexistent | ambiguous) & ~bad
    out_oob = oob & ~bad
    utc = utc.copy()
    utc[out_bad | out_oob | bad] = 0
    return utc, out_bad, out_oob


def _strip(values: np.ndarray) -> np.ndarray:
    """Strip surrounding spaces of an object array of str (non-str values become "")."""
    return np.array([v.strip() if isinstance(v, str) else "" for v in values.tolist()],
                    dtype=object) if len(values) else np.asarray(values, dtype=object)


def _arrow_ints(arr) -> np.ndarray:
    """An arrow integer array as int64 numpy, nulls as 0 (they are reported elsewhere)."""
    return np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False)).astype(np.int64,
                                                                             copy=False)


def _reasons_for(bad, ok, reasons):
    """The (category, reason) of the rows that are bad and were otherwise ok (reasons follow
    bad)."""
    idx = np.flatnonzero(bad)
    keep = ok[idx]
    return [r for r, k in zip(reasons, keep.tolist()) if k]


def _parse_text_rows(parser, text, ok, rows, problems, name):
    """Parse time strings where present; empty ones were reported as missing already."""
    n = len(text)
    present = np.array([bool(s) for s in text], bool) if n else np.zeros(0, bool)
    ns = np.zeros(n, np.int64)
    bad = np.zeros(n, bool)
    reasons_all: list[tuple[str, str]] = []
    idx = np.flatnonzero(present)
    if len(idx):
        try:
            sub, sub_bad, sub_reasons = parser.parse_text(text[idx])
        except ValueError as exc:
            raise ReadError(name, int(rows[idx[0]]), str(exc), "row") from None
        ns[idx] = sub
        bad[idx] = sub_bad
        reasons_all = sub_reasons
    return ns, bad, reasons_all
