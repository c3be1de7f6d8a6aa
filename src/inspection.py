"""``sessiondata inspect DATA``: what a data file or folder is, and the run command for it.

:func:`inspect` reads the whole input (not its first rows) and tells:

- the format: a vendor format (LEAN zips, Databento DBN, Binance klines) or CSV/Parquet, with
  or without a header line, the delimiter, and whether the header fits the rows;
- which column is which (by name, or by content when the header is missing or wrong), and
  the columns left unused (one that looks like a misspelt known name is named);
- the base interval, from the spacing of the timestamps (the most common step);
- whether the times carry their zone, and for naive ones the zone and the stamp (a bar's
  start or end) that fit best;
- the hours each weekday the data covers, in the zone of the best calendar;
- the calendars that fit, ranked: exchange calendars (a short list of the most used
  markets), the same with the hours the data shows (``CODE@HH:MM-HH:MM``), the FX week,
  24/7 and a weekly calendar of the observed hours;
- volume: present, absent, or all zero;
- and the ``sessiondata run ...`` command it would use, with the counts that command gives.

Ranking.  Each calendar is scored under every reading (zone, stamp) with the fit of
:mod:`sessiondata.plausibility` (``inside / (bars + missing)``), except that a bar outside the
hours but on a session's day (pre- and after-market, which a regular-hours calendar leaves
out by design) counts a tenth of a bar: ``rank = inside / (bars - 0.9 * outside_on_session_day
+ missing)``.  Calendars whose ranks agree to 0.001 are ordered exchange, FX, 24/7, exchange
with other hours, observed weekly (a named calendar knows the holidays and the week; hours
read off the data are the last resort), then by the plain exchange's own fit, then by the
fewest options.  Other hours are tried for an exchange only when at least half the bars
already fall inside its sessions.
"""

from __future__ import annotations

import difflib
import re
import shlex
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from . import readers
from .readers.base import _open_binary
from .calendar import Calendar
from .plausibility import Fit, Reading, _to_wall, infer_base_ns, interval_name, \
    score_readings

__all__ = ["Inspection", "inspect", "EXCHANGES"]

# The exchanges tried (when exchange_calendars is installed): the most used markets.
EXCHANGES = ("XNYS", "CME_GLOBEX", "XETR", "XEUR", "XLON", "XTKS", "XHKG")
EXTENDED_WEIGHT = 0.1
_TIE = 1e-3
_NS_DAY = 86_400 * 1_000_000_000
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_KNOWN = ("timestamp", "date", "time", "open", "high", "low", "close", "volume", "symbol")

_DATE_RES = [
    (re.compile(r"^\d{4}-\d{2}-\d{2}$"), None),
    (re.compile(r"^\d{4}/\d{2}/\d{2}$"), "%Y/%m/%d"),
    (re.compile(r"^\d{8}$"), "%Y%m%d"),
    (re.compile(r"^\d{2}\.\d{2}\.\d{4}$"), "%d.%m.%Y"),
    (re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$"), "%m/%d/%Y"),
]
_TIME_RE = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$")
_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}")
_NUMBER_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_EPOCH_DIGITS = (10, 13, 16, 19)


@dataclass
class Candidate:
    """A calendar scored against the data under its best reading."""

    spec: str               # the --calendar text
    kind: int               # 0 exchange, 1 FX, 2 24/7, 3 exchange@hours, 4 observed weekly
    calendar: Calendar
    reading: Reading
    fit: Fit
    plain_fit: float = 0.0  # for exchange@hours: the plain exchange's fit (tie-break)

    @property
    def rank(self) -> float:
        f = self.fit
        total = f.bars - (1 - EXTENDED_WEIGHT) * f.outside_on_session_day + f.missing
        return f.inside / total if total > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"calendar": self.spec, "tz": self.reading.tz, "stamp": self.reading.stamp,
                "rank": round(self.rank, 6), **self.fit.to_json()}


@dataclass
class Inspection:
    """What :func:`inspect` found (``render()`` for people, ``to_json()`` for programs)."""

    path: str
    format: str = "csv"
    files: int = 0
    csv: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)
    misspelt: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    symbols: list[str] = field(default_factory=list)
    bars: int = 0
    first: str | None = None
    last: str | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    base: str | None = None
    base_share: float = 0.0
    naive: bool | None = None
    volume: str = "absent"
    hours: list[dict[str, Any]] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def command(self) -> str | None:
        """The ``sessiondata run ...`` command for the data, or None when none fits."""
        best = self.best
        if best is None or self.base is None:
            return None
        words = ["sessiondata", "run", self.path]
        if self.format not in ("csv", "parquet"):
            words += ["--format", self.format]
        opts = self.options
        if opts.get("delimiter"):
            words += ["--delimiter", "tab" if opts["delimiter"] == "\t" else opts["delimiter"]]
        if opts.get("columns"):
            words += ["--columns", ",".join(opts["columns"])]
        if opts.get("header") is False:
            words += ["--no-header"]
        if opts.get("ts_format"):
            words += ["--ts-format", opts["ts_format"]]
        words += ["--calendar", best.spec]
        if self.base != "1m":
            words += ["--base", self.base]
            derived = _derived(self.base)
            if derived not in ("5m,15m,1h", "15m,1h"):    # the default works for 1m and 5m
                words += ["--derived", derived]
        if best.reading.tz is not None:     # naive times: say their zone, even UTC
            words += ["--tz", best.reading.tz]
        if best.reading.stamp != "start":
            words += ["--stamp", best.reading.stamp]
        if self.dropped:
            words += ["--on-bad", "drop"]
        return " ".join(shlex.quote(w) for w in words)

    def to_json(self) -> dict[str, Any]:
        best = self.best
        return {
            "path": self.path, "format": self.format, "files": self.files, "csv": self.csv,
            "columns": self.columns, "unused_columns": self.unused,
            "misspelt_columns": self.misspelt, "read_options": self.options,
            "symbols": self.symbols, "bars": self.bars, "first": self.first,
            "last": self.last, "dropped": self.dropped, "base_interval": self.base,
            "base_share": round(self.base_share, 6),
            "times": None if self.naive is None else ("naive" if self.naive else "with zone"),
            "tz": best.reading.tz if best else None,
            "stamp": best.reading.stamp if best else None,
            "volume": self.volume, "hours": self.hours,
            "calendars": [c.to_json() for c in self.candidates],
            "expected": best.fit.to_json() if best else None,
            "notes": self.notes, "error": self.error, "command": self.command,
        }

    def render(self) -> str:
        """The findings as text; the command on a line of its own at the end."""
        lines = [f"sessiondata inspect: {self.path}"]
        what = self.format
        if self.format == "csv" and self.csv:
            c = self.csv
            delim = {"\t": "tab"}.get(c.get("delimiter", ","), c.get("delimiter", ","))
            what = (f"CSV, {'a header line' if c.get('header') else 'no header line'}, "
                    f"delimiter {delim!r}, {c.get('fields')} fields")
            if c.get("header_fields") not in (None, c.get("fields")):
                what += f" (the header names {c['header_fields']}: it does not fit the rows)"
        lines.append(f"format       {what}" + (f"; {self.files} files" if self.files > 1 else ""))
        if self.columns:
            lines.append("columns      " + ", ".join(f"{k}={v}" for k, v in self.columns.items()))
        if self.unused:
            lines.append("unused       " + ", ".join(self.unused))
        if self.error:
            lines.append(f"error        {self.error}")
        if self.bars:
            lines.append(f"bars         {self.bars:,} of {len(self.symbols)} symbol"
                         f"{'s' if len(self.symbols) != 1 else ''} "
                         f"({', '.join(self.symbols[:5])}{', ...' if len(self.symbols) > 5 else ''})"
                         f", {self.first} .. {self.last}")
        if self.dropped:
            lines.append("dropped      " + ", ".join(f"{n:,} {why}" for why, n in
                                                     self.dropped.items()))
        if self.base:
            lines.append(f"base         {self.base} ({100 * self.base_share:.1f}% of the steps "
                         "between bars)")
        best = self.best
        if self.naive is not None:
            if self.naive:
                zone = best.reading.tz if best else "?"
                lines.append(f"times        naive: they fit best read in {zone}")
            else:
                lines.append("times        with their zone (UTC offsets or epochs)")
        if best:
            lines.append(f"stamp        {best.reading.stamp} (a bar's "
                         f"{'close' if best.reading.stamp == 'end' else 'open'})")
        if self.bars:
            lines.append(f"volume       {self.volume}")
        if self.hours:
            zone = self.hours[0]["tz"]
            lines.append(f"hours        covered each weekday ({zone}, median first bar to "
                         "end of last):")
            for h in self.hours:
                lines.append(f"  {h['weekday']}  {h['days']:>3} days  {h['first']}-{h['last']}")
        if self.candidates:
            lines.append("calendars    ranked by fit (inside / (bars + missing), a bar outside "
                         "the hours on a session day counting 0.1):")
            width = max(len(c.spec) for c in self.candidates[:8])
            lines.append(f"  {'calendar':<{width}}  {'tz':<16} stamp  {'rank':>7}  "
                         f"{'inside':>9}  {'outside':>8}  {'missing':>8}  empty sessions")
            for cand in self.candidates[:8]:
                fit = cand.fit
                lines.append(f"  {cand.spec:<{width}}  {str(cand.reading.tz or '-'):<16} "
                             f"{cand.reading.stamp:<5}  {100 * cand.rank:6.2f}%  "
                             f"{fit.inside:>9,}  {fit.outside:>8,}  {fit.missing:>8,}  "
                             f"{fit.empty_sessions:,}")
        for note in self.notes:
            lines.append(f"note         {note}")
        if best:
            f = best.fit
            lines.append(f"expect       {f.expected:,} slots, {f.missing:,} missing, "
                         f"{f.outside:,} bars outside the sessions")
        command = self.command
        lines.append("")
        lines.append(command if command else "no run command: see the error above")
        return "\n".join(lines)


def _derived(base: str) -> str:
    from .intervals import parse_interval

    b = parse_interval(base).ns
    keep = [iv for iv in ("5m", "15m", "1h") if parse_interval(iv).ns > b
            and parse_interval(iv).ns % b == 0]
    return ",".join(keep + (["1d"] if not keep else [])) or "none"


# ------------------------------------------------------------------------------------------
# Formats and CSV layouts
# ------------------------------------------------------------------------------------------


def _head_lines(path: Path, n: int = 60) -> list[str]:
    with _open_binary(path) as f:
        data = f.read(1 << 16)
    text = data.decode("utf-8-sig", errors="replace")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(data) == 1 << 16 and lines:
        lines = lines[:-1]               # a line cut at 64 KiB
    return lines[:n]


def _data_files(path: Path, notes: list[str] | None = None) -> list[Path]:
    """The folder's data files as a run lists them; the files a run skips as not bar data
    become notes (instead of the readers' warnings)."""
    skipped: list = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", readers.ReadWarning)
        files = readers.data_files(path, skipped=skipped)
    if notes is not None:
        for p, why in skipped:
            notes.append(f"{Path(p).name}: not bar data ({why}), skipped (a run skips it too)")
    return files


def _detect_format(path: Path) -> str:
    """``lean``, ``databento``, ``binance``, ``parquet`` or ``csv``."""
    if path.is_dir():
        for p in _walk(path, 4):
            name = p.name.lower()
            if re.match(r"^\d{8}_(trade|quote)\.zip$", name):
                return "lean"
            if name.endswith((".dbn", ".dbn.zst")):
                return "databento"
        files = _data_files(path)
        if files and _kind(files[0]) == "csv" and _is_kline(files[0]):
            return "binance"
        return "parquet" if files and all(_kind(f) == "parquet" for f in files) else "csv"
    name = path.name.lower()
    if re.match(r"^\d{8}_(trade|quote)\.zip$", name):
        return "lean"
    if name.endswith((".dbn", ".dbn.zst")):
        return "databento"
    if name.endswith(".zip"):
        return "binance"
    if _kind(path) == "parquet":
        return "parquet"
    if _is_kline(path):
        return "binance"
    return "csv"


def _walk(path: Path, depth: int) -> Iterable[Path]:
    try:
        entries = sorted(path.iterdir())
    except OSError:
        return
    for p in entries:
        if p.is_dir() and depth > 0:
            yield from _walk(p, depth - 1)
        else:
            yield p


def _kind(path: Path) -> str | None:
    lower = path.name.lower()
    for suffix in (".gz", ".bz2", ".xz"):
        if lower.endswith(suffix):
            lower = lower[: -len(suffix)]
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    if lower.endswith((".csv", ".txt", ".tsv")):
        return "csv"
    return None


def _is_kline(path: Path) -> bool:
    """A Binance kline CSV: no header, 12 fields, an epoch (ms or us) open time first and a
    close time seventh."""
    try:
        lines = _head_lines(path, 3)
    except OSError:
        return False
    if not lines:
        return False
    fields = lines[0].split(",")
    return (len(fields) == 12 and fields[0].isdigit() and len(fields[0]) in (13, 16)
            and fields[6].isdigit())


def _field_kind(values: Sequence[str]) -> tuple[str, str | None]:
    """The kind of a column's values: epoch, datetime, date (with its strptime format or
    None for ISO), time, number or text."""
    vals = [v.strip().strip('"') for v in values if v.strip()]
    if not vals:
        return "text", None
    if all(v.isdigit() and len(v) in _EPOCH_DIGITS for v in vals):
        return "epoch", None
    if all(_DATETIME_RE.match(v) for v in vals):
        return "datetime", None
    for rx, fmt in _DATE_RES:
        if all(rx.match(v) for v in vals):
            if fmt == "%m/%d/%Y" and any(int(v.split("/")[0]) > 12 for v in vals):
                fmt = "%d/%m/%Y"            # the day first, as a value above 12 shows
            return "date", fmt
    if all(_TIME_RE.match(v) for v in vals):
        return "time", None
    if all(_NUMBER_RE.match(v) for v in vals):
        return "number", None
    return "text", None


def _compact_times(values: Sequence[str]) -> bool:
    """Whether a column holds times of day as HHMM or HHMMSS digits."""
    vals = [v.strip() for v in values if v.strip()]
    if not vals or not all(v.isdigit() and 3 <= len(v) <= 6 for v in vals):
        return False
    lengths = {len(v) for v in vals}
    if lengths <= {3, 4}:
        return all(int(v) % 100 < 60 and int(v) // 100 < 24 for v in vals)
    return lengths <= {5, 6} and all(int(v) % 100 < 60 and (int(v) // 100) % 100 < 60
                                     and int(v) // 10000 < 24 for v in vals)


def _ohlc_order(rows: list[list[float]]) -> list[int] | None:
    """The order of four price columns as open, high, low, close, from their values."""
    import itertools

    arr = np.array(rows, dtype=float)
    for perm in itertools.permutations(range(4)):
        o, h, lo, c = (arr[:, k] for k in perm)
        if np.all(h >= np.maximum(o, c)) and np.all(lo <= np.minimum(o, c)):
            return list(perm)
    return None


def _is_bars(found: Inspection) -> bool:
    """Whether a CSV layout has a time and the four prices."""
    has = set(found.columns)
    return {"open", "high", "low", "close"} <= has and bool(has & {"timestamp", "date"})


def _csv_layout(path: Path, found: Inspection) -> dict[str, Any]:
    """The read options of a CSV file, from its first lines; fills ``found``'s columns."""
    lines = _head_lines(path)
    if not lines:
        raise ValueError(f"{path}: no lines")
    counts = {d: min(ln.count(d) for ln in lines[1:] or lines) for d in (",", ";", "\t", "|")}
    delimiter = max(counts, key=lambda d: counts[d])
    split = [[f.strip() for f in ln.split(delimiter)] for ln in lines]
    first = split[0]
    header = not any(_NUMBER_RE.match(f.strip('"')) or _DATETIME_RE.match(f.strip('"'))
                     or _TIME_RE.match(f.strip('"')) for f in first)
    rows = split[1:] if header else split
    nfields = max((len(r) for r in rows), default=len(first))
    found.csv = {"delimiter": delimiter, "header": header, "fields": nfields,
                 "header_fields": len(first) if header else None}
    names = [f.strip('"') for f in first] if header else []
    options: dict[str, Any] = {}
    if delimiter != ",":
        options["delimiter"] = delimiter
    cols = [[r[k] if k < len(r) else "" for r in rows] for k in range(nfields)]
    kinds = [_field_kind(c) for c in cols]
    # Roles by content.
    roles: dict[int, str] = {}
    fmt = None
    ts = next((k for k, (kd, _f) in enumerate(kinds) if kd in ("datetime", "epoch")), None)
    if ts is not None:
        roles[ts] = "timestamp"
    else:
        d = next((k for k, (kd, _f) in enumerate(kinds) if kd == "date"), None)
        t = next((k for k, (kd, _f) in enumerate(kinds) if kd == "time"), None)
        if d is not None and t is None and d + 1 < nfields and _compact_times(cols[d + 1]):
            # A time of day written HHMM or HHMMSS beside the date (MetaStock, some vendors).
            t = d + 1
            secs = "%S" if max(len(v) for v in cols[t] if v) > 4 else ""
            roles[d], roles[t] = "date", "time"
            fmt = f"{kinds[d][1] or '%Y-%m-%d'} %H%M{secs}"
        elif d is not None and t is not None:
            roles[d], roles[t] = "date", "time"
            if kinds[d][1] is not None:
                secs = ":%S" if all(v.count(":") == 2 for v in cols[t] if v) else ""
                fmt = f"{kinds[d][1]} %H:%M{secs}"
        elif d is not None:
            roles[d] = "timestamp"
    numeric = [k for k, (kd, _f) in enumerate(kinds) if kd == "number" and k not in roles]
    if len(numeric) >= 4:
        try:
            values = [[float(r[k]) for k in numeric[:4]] for r in rows if len(r) == nfields]
        except ValueError:
            values = []
        order = _ohlc_order(values) if values else None
        if order is not None:
            for name, k in zip(("open", "high", "low", "close"), order):
                roles[numeric[k]] = name
            if len(numeric) >= 5:
                roles[numeric[4]] = "volume"
    if header:
        # <TICKER>, "Symbol": the name without its punctuation.
        sym = next((k for k, n in enumerate(names) if re.sub(r"[^a-z]", "", n.lower())
                    in ("symbol", "ticker") and kinds[k][0] == "text"), None)
        if sym is not None:
            roles[sym] = "symbol"
    # Does the header name the same roles?  Then no --columns.
    by_name = {}
    if header and len(names) == nfields:
        lower = [n.lower() for n in names]
        for k, n in enumerate(lower):
            if n in ("timestamp", "ts", "datetime", "date_time", "time_stamp") or \
                    n.startswith(("timestamp", "datetime")):
                by_name[k] = "timestamp"
            elif n in ("open", "high", "low", "close", "volume", "date", "time", "symbol",
                       "ticker"):
                by_name[k] = n if n != "ticker" else "symbol"
    # The header fits when it names the roles the content shows (volume may be unnamed:
    # then it is unused, and named below when it looks like a misspelt "volume").
    fits = header and len(names) == nfields and all(
        by_name.get(k) == role or (role == "timestamp" and by_name.get(k) in ("date", "time"))
        or (role == "volume" and k not in by_name)
        for k, role in roles.items())
    if fits:
        fixed = list(names)
        for k, n in enumerate(names):
            if k in by_name:
                found.columns[by_name[k]] = n
            else:
                found.unused.append(n)
                close = difflib.get_close_matches(n.lower(), _KNOWN, n=1, cutoff=0.75)
                if close and close[0] not in by_name.values():
                    found.misspelt[n] = close[0]
                    fixed[k] = close[0]
                    found.notes.append(f"column {n!r} looks like a misspelt {close[0]!r}: "
                                       "--columns names it")
        if found.misspelt:
            options["columns"] = fixed
    else:
        given: list[str] = []
        for k in range(nfields):
            role = roles.get(k)
            if role is None:
                label = names[k].lower() if header and len(names) == nfields and \
                    names[k].lower() not in _KNOWN and names[k] else f"unused{k + 1}"
                given.append(re.sub(r"[^a-z0-9_]", "_", label) or f"unused{k + 1}")
                found.unused.append(given[-1])
            else:
                given.append(role)
                found.columns[role] = f"field {k + 1}" + (f" ({names[k]!r})" if header
                                                          and k < len(names) else "")
        options["columns"] = given
        if not header:
            options["header"] = False
        if header and len(names) != nfields:
            found.notes.append(f"the header names {len(names)} fields, the rows have "
                               f"{nfields}: --columns names them")
    if fmt:
        options["ts_format"] = fmt
    return options


# ------------------------------------------------------------------------------------------
# Observed hours
# ------------------------------------------------------------------------------------------


def _observed_hours(utc: np.ndarray, zone, base_ns: int) -> tuple[str, str, str] | None:
    """(open, close, days) of a weekly calendar of the hours ``utc`` covers in ``zone``:
    the time-of-day slots holding a bar on at least half the days with bars, cut at the
    longest daily pause; the weekdays with bars on at least half their dates."""
    if len(utc) == 0:
        return None
    wall = _to_wall(utc, zone)
    step = max(base_ns, 60 * 1_000_000_000)
    nbins = int(_NS_DAY // step)
    day = wall // _NS_DAY
    tod_bin = (wall % _NS_DAY) // step
    pairs = np.unique(day * nbins + tod_bin)
    per_bin = np.bincount(pairs % nbins, minlength=nbins)
    ndays = len(np.unique(day))
    covered = per_bin >= 0.5 * ndays
    if not covered.any():
        return None
    if covered.all():
        open_bin, close_bin = 0, nbins
    else:
        # The longest circular run of uncovered bins is the daily pause.
        ext = np.concatenate([~covered, ~covered])
        best_len, best_end, run = 0, 0, 0
        for i, off in enumerate(ext.tolist()):
            run = run + 1 if off else 0
            if run > best_len and run <= nbins:
                best_len, best_end = run, i
        close_bin = (best_end - best_len + 1) % nbins
        open_bin = (best_end + 1) % nbins
    open_ns, close_ns = open_bin * step, close_bin * step
    overnight = 0 < close_ns <= open_ns
    label = day + ((wall % _NS_DAY >= open_ns) & overnight)
    span = np.arange(int(label.min()), int(label.max()) + 1)
    active = np.unique(label)
    wd_all = np.bincount((span + 3) % 7, minlength=7)
    wd_act = np.bincount((active + 3) % 7, minlength=7)
    days = [d for d in range(7) if wd_all[d] and wd_act[d] >= 0.5 * wd_all[d]]
    if not days:
        return None
    return _hhmm(open_ns), _hhmm(close_ns if close_ns else _NS_DAY), _days_text(days)


def _days_text(days: list[int]) -> str:
    """``[0, 1, 2, 3, 4]`` -> ``"Mon-Fri"``; a wrapping run ``"Sun-Thu"``; else a list."""
    chosen = set(days)
    if len(chosen) == 7:
        return "Mon-Sun"
    for start in chosen:
        if (start - 1) % 7 not in chosen:
            run = [(start + k) % 7 for k in range(len(chosen))]
            if set(run) == chosen:
                return _WEEKDAYS[start] if len(run) == 1 else \
                    f"{_WEEKDAYS[start]}-{_WEEKDAYS[run[-1]]}"
    return ",".join(_WEEKDAYS[d] for d in sorted(chosen))


def _hhmm(ns: int) -> str:
    minutes = ns // 60_000_000_000
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _weekday_hours(ts_list: list[np.ndarray], zone, base_ns: int) -> list[dict[str, Any]]:
    """Per local weekday: days with bars, median first bar and median end of last."""
    firsts: dict[int, list[int]] = {}
    lasts: dict[int, list[int]] = {}
    for ts in ts_list:
        if not len(ts):
            continue
        wall = _to_wall(ts, zone)
        day = wall // _NS_DAY
        starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
        ends = np.r_[starts[1:], len(day)] - 1
        for s, e in zip(starts.tolist(), ends.tolist()):
            d = int(day[s])
            wd = (d + 3) % 7
            firsts.setdefault(wd, []).append(int(wall[s] - d * _NS_DAY))
            lasts.setdefault(wd, []).append(int(wall[e] - d * _NS_DAY) + base_ns)
    out = []
    for wd in range(7):
        if wd not in firsts:
            continue
        out.append({"weekday": _WEEKDAYS[wd], "tz": zone.key, "days": len(firsts[wd]),
                    "first": _hhmm(int(np.median(firsts[wd]))),
                    "last": _hhmm(int(np.median(lasts[wd])))})
    return out


# ------------------------------------------------------------------------------------------
# inspect()
# ------------------------------------------------------------------------------------------


def _exchanges() -> list[tuple[str, Calendar]]:
    out = []
    for code in EXCHANGES:
        try:
            out.append((code, Calendar.exchange(code)))
        except (ImportError, ValueError):
            continue
    return out


def inspect(data: Any, *, format: str | None = None,
            calendars: Iterable[Calendar] = ()) -> Inspection:
    """Say what a data file or folder is, and the ``sessiondata run`` command for it.

    Parameters
    ----------
    data : path-like
        A data file or a folder of them (CSV, Parquet, or a vendor format).
    format : str, optional
        The vendor format when it cannot be told from the files (``lean``, ``databento``,
        ``binance``).
    calendars : iterable of Calendar
        More calendars to score beside the built-in list (see the module).

    Returns
    -------
    Inspection
        ``command`` is the run command (None when the data could not be read: ``error``
        says why); ``render()`` prints the findings, ``to_json()`` gives them as a dict.
    """
    path = Path(data)
    found = Inspection(str(data))
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    fmt = (format or _detect_format(path)).lower()
    found.format = fmt
    options: dict[str, Any] = {}
    read_from: Any = path
    if fmt == "csv":
        files = _data_files(path, found.notes) if path.is_dir() else [path]
        usable: list[Path] = []
        for f in files:
            probe = Inspection(found.path)
            try:
                opts = _csv_layout(f, probe)
            except (ValueError, OSError, UnicodeError):
                opts = None
            if opts is None or not _is_bars(probe):
                if path.is_dir():
                    found.notes.append(f"{f.name}: not bar data, left out here (a run reads "
                                       "every data file of the folder: move it out)")
                continue
            if not usable:
                options = opts
                for name in ("csv", "columns", "unused", "misspelt", "notes"):
                    value = getattr(probe, name)
                    if isinstance(value, list):
                        getattr(found, name).extend(value)
                    else:
                        setattr(found, name, value)
            usable.append(f)
        if not usable:
            found.error = "no file with a time column and four prices (open, high, low, close)"
            return found
        if path.is_dir() and len(usable) < len(files):
            read_from = usable
    if path.is_dir() and fmt in ("csv", "parquet"):
        found.files = len(_data_files(path))
    found.options = options
    result = None
    fmt_arg = None if fmt in ("csv", "parquet") else fmt
    # A month-first date seen in the first lines may be day-first further down (the whole
    # file decides): the other order is tried when the first does not read.
    variants = [options]
    if "%m/%d/%Y" in str(options.get("ts_format", "")):
        variants.append({**options,
                         "ts_format": options["ts_format"].replace("%m/%d/%Y", "%d/%m/%Y")})
    for on_bad in ("raise", "drop"):
        for opts in variants if on_bad == "raise" else variants[:1]:
            try:
                result = readers.read_bars(read_from, format=fmt_arg, on_bad=on_bad, **opts)
                options = found.options = opts
                break
            except (ValueError, OSError, ImportError) as exc:
                if opts is variants[0]:
                    found.error = " ".join(str(exc).split())
        if result is not None:
            break
    if result is None:
        return found
    found.error = None
    found.dropped = dict(result.dropped)
    if fmt not in ("csv", "parquet"):
        found.files = len(result.sources)
    bars = {s: b for s, b in result.bars.items() if len(b)}
    found.symbols = sorted(bars)
    ts_list = [b.ts for b in bars.values()]
    found.bars = sum(len(t) for t in ts_list)
    if not found.bars:
        found.error = "no bars read"
        return found
    lo = min(int(t[0]) for t in ts_list)
    hi = max(int(t[-1]) for t in ts_list)
    found.first, found.last = (str(np.datetime64(v, "ns"))[:19].replace("T", " ")
                               for v in (lo, hi))
    vol = [b for b in bars.values() if b.has_volume]
    if not vol:
        found.volume = "absent (NaN through aggregation and exports)"
    elif all(np.all(b.volume == 0) for b in vol):
        found.volume = "present, 0 on every row"
    else:
        found.volume = "present"
    base, share = infer_base_ns(ts_list)
    if base is None or base % 1_000_000_000:
        found.error = "cannot tell the base interval (fewer than two bars per symbol)" \
            if base is None else f"the bars are {base} ns apart: not whole seconds"
        return found
    found.base, found.base_share = interval_name(base), share
    naive = result.naive and fmt in ("csv", "parquet")
    found.naive = naive
    found.candidates = _rank(ts_list, base, naive, list(calendars))
    best = found.best
    if best is not None:
        zone = best.calendar.tz
        shift = base if best.reading.stamp == "end" else 0
        moved = [_reread(t, best.reading, naive) - shift for t in ts_list]
        found.hours = _weekday_hours(moved, zone, base)
    return found


def _reread(ts: np.ndarray, reading: Reading, naive: bool) -> np.ndarray:
    """Times read as UTC (naive: the wall clock) -> the UTC instants under ``reading``'s zone
    (before its stamp's shift)."""
    if not naive or reading.tz in (None, "UTC"):
        return ts
    from .plausibility import _from_wall, _zone

    return _from_wall(ts, _zone(reading.tz))


def _score(ts_list, calendar: Calendar, base: int, naive: bool,
           zones: Sequence[str]) -> tuple[Reading, Fit] | None:
    readings = [Reading(z if naive else None, s, base) for z in zones for s in ("start", "end")]
    fits = score_readings(ts_list, calendar, readings, read_tz="UTC" if naive else None,
                          read_shift_ns=0, extended=True)
    if not fits:
        return None

    def key(r: Reading):
        f = fits[r]
        total = f.bars - (1 - EXTENDED_WEIGHT) * f.outside_on_session_day + f.missing
        rank = f.inside / total if total > 0 else 0.0
        return (round(rank / _TIE), -(r.stamp != "start") - (r.tz not in (None, "UTC")))

    best = max(fits, key=key)
    return best, fits[best]


def _rank(ts_list: list[np.ndarray], base: int, naive: bool,
          extra: list[Calendar]) -> list[Candidate]:
    out: list[Candidate] = []

    def add(spec: str, kind: int, cal: Calendar, plain: float = 0.0) -> Candidate | None:
        zones = ["UTC", cal.tz.key] if naive else ["UTC"]
        got = _score(ts_list, cal, base, naive, list(dict.fromkeys(zones)))
        if got is None:
            return None
        cand = Candidate(spec, kind, cal, got[0], got[1], plain)
        out.append(cand)
        return cand

    for cal in extra:
        add(cal.name if cal.name != "ALWAYS" else "24/7", 0, cal)
    for code, cal in _exchanges():
        cand = add(code, 0, cal)
        # Other hours only for data that mostly trades in the exchange's sessions anyway.
        if cand is None or cand.fit.inside < 0.5 * cand.fit.bars:
            continue
        utc = _reread(np.concatenate(ts_list), cand.reading, naive)
        utc = np.sort(utc - (base if cand.reading.stamp == "end" else 0))
        hours = _observed_hours(utc, cal.tz, base)
        if hours is None:
            continue
        open_, close, _days = hours
        spec = f"{code}@{open_}-{close}"
        try:
            own = Calendar.exchange(spec)
        except ValueError:
            continue
        w = _score(ts_list, own, base, naive, [cand.reading.tz or "UTC"])
        if w is not None:
            out.append(Candidate(spec, 3, own, w[0], w[1], cand.fit.score))
    add("FX", 1, Calendar.fx())
    add("24/7", 2, Calendar.always())
    # The observed hours, in the zone of the best so far and in UTC.
    zones = ["UTC"]
    ranked = sorted(out, key=_order)
    if ranked and ranked[0].calendar.tz.key != "UTC":
        zones.insert(0, ranked[0].calendar.tz.key)
    r = ranked[0].reading if ranked else Reading("UTC" if naive else None, "start", base)
    stamp = r.stamp
    for zname in zones:
        utc = np.sort(np.concatenate([_reread(t, r, naive) for t in ts_list])
                      - (base if stamp == "end" else 0))
        import zoneinfo

        hours = _observed_hours(utc, zoneinfo.ZoneInfo(zname), base)
        if hours is None:
            continue
        open_, close, days = hours
        spec = f"weekly:{zname},{open_},{close},{days}"
        try:
            cal = Calendar.weekly(zname, open_, close, days)
        except ValueError:
            continue
        fits = score_readings(ts_list, cal, [r], read_tz="UTC" if naive else None,
                              read_shift_ns=0, extended=True)
        if r in fits:
            out.append(Candidate(spec, 4, cal, r, fits[r]))
    out.sort(key=_order)
    seen: set[str] = set()
    unique = []
    for c in out:
        if c.spec not in seen:
            seen.add(c.spec)
            unique.append(c)
    return unique


def _order(c: Candidate):
    options = (c.reading.stamp != "start") + (c.reading.tz not in (None, "UTC"))
    return (-round(c.rank / _TIE), c.kind, -c.plain_fit, options)
