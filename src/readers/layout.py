"""Which column is which: the header of a CSV file (delimiter, names, first row) and the
roles of the columns (time, prices, volume, symbol), found by name or as the options say."""

from __future__ import annotations

import csv
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..bars import PRICE_COLUMNS

from .base import (
    _DELIMITERS, _open_binary, _READ_ERRORS, _SYMBOL_NAMES, _text_encoding, _TS_NAMES,
    _TS_PREFIXES, _why, ReadError, ReadOptions, ReadWarning,
)


@dataclass(frozen=True)
class _Layout:
    """Which source columns play which role."""

    ts: str | None              # single timestamp column
    date: str | None            # or a date column ...
    time: str | None            # ... and a time column
    prices: dict[str, str]      # role -> column name
    symbol: str | None

    @property
    def time_columns(self) -> list[str]:
        if self.ts is not None:
            return [self.ts]
        assert self.date is not None and self.time is not None
        return [self.date, self.time]

    @property
    def time_label(self) -> str:
        return repr(self.ts) if self.ts is not None else f"{self.date!r} + {self.time!r}"

    @property
    def has_volume(self) -> bool:
        return "volume" in self.prices

    @property
    def price_columns(self) -> list[str]:
        """The source columns of the prices (and the volume, when there is one), in order."""
        return [self.prices[c] for c in PRICE_COLUMNS if c in self.prices]

    @property
    def needed(self) -> list[str]:
        out = list(self.time_columns) + self.price_columns
        if self.symbol is not None:
            out.append(self.symbol)
        return out


def _detect_layout(names: list[str], opts: ReadOptions, where: str) -> _Layout:
    """Find the columns by name (case-insensitive), or as the options say."""
    clean = [str(n).strip() for n in names]
    lower: dict[str, str] = {}
    for raw, n in zip(names, clean):
        key = n.lower()
        if key in lower:
            continue
        lower[key] = raw
    has = ", ".join(map(repr, clean)) or "none"

    def pick(name: str, what: str) -> str:
        hit = lower.get(name.strip().lower())
        if hit is None:
            raise ReadError(where, None, f"no {what} column {name!r} (columns: {has})")
        return hit

    dupes = sorted({n for n in (c.lower() for c in clean) if
                    [c.lower() for c in clean].count(n) > 1})
    ts = date = time = None
    if opts.ts_column:
        ts = pick(opts.ts_column, "timestamp")
    elif opts.date_column:
        date, time = pick(opts.date_column, "date"), pick(str(opts.time_column), "time")
    else:
        ts = next((lower[n] for n in _TS_NAMES if n in lower), None)
        if ts is None:
            ts = next((raw for key, raw in lower.items() if key.startswith(_TS_PREFIXES)), None)
        if ts is None and "date" in lower and "time" in lower:
            date, time = lower["date"], lower["time"]
        elif ts is None:
            ts = lower.get("time") or lower.get("date")
        if ts is None and date is None:
            raise ReadError(where, None, "no timestamp column (looked for timestamp, ts, "
                            f"datetime, time, date, or date + time; columns: {has}); "
                            + (_headerless_hint(clean) or
                               "name it with ts_column (--ts-column)"))
    renames = dict(opts.renames or {})
    prices = {}
    missing = []
    for role in PRICE_COLUMNS:
        name = renames.get(role, role)
        hit = lower.get(name.strip().lower())
        if hit is None:
            # Volume is optional (quotes, indices) unless a column was named for it.
            if role != "volume" or "volume" in renames:
                missing.append(name)
        else:
            prices[role] = hit
    if missing:
        hint = "" if opts.field_names else \
            "; name the fields with columns=[...] (--columns NAME,NAME,...)"
        near = _misspelt(clean, missing)
        if near:
            hint = "; " + ", ".join(f"{got!r} looks like {want!r}" for got, want in near) + hint
        headerless = _headerless_hint(clean)
        if headerless and not opts.field_names:
            hint = "; " + headerless
        raise ReadError(where, None, f"missing column{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(map(repr, missing))} (columns: {has}){hint}")
    if "volume" not in prices and "volume" not in renames:
        for got, want in _misspelt(clean, ["volume"]):
            warnings.warn(f"{where}: column {got!r} is not used: is it {want!r}? (the bars "
                          "have no volume; rename the column, or name the fields with "
                          "--columns)", ReadWarning, stacklevel=3)
    symbol: str | None
    if opts.symbol_column:
        symbol = pick(opts.symbol_column, "symbol")
    elif opts.symbol is None:
        symbol = next((lower[n] for n in _SYMBOL_NAMES if n in lower), None)
    else:
        symbol = None
    layout = _Layout(ts, date, time, prices, symbol)
    if symbol is not None:
        roles = {c: "time" for c in layout.time_columns}
        roles.update({c: role for role, c in prices.items()})
        if symbol in roles:
            raise ReadError(where, None, f"column {str(symbol).strip()!r} cannot be both the "
                            f"symbol and the {roles[symbol]}; name another symbol column "
                            "(--symbol-column) or none")
    used = {str(n).strip().lower() for n in layout.needed}
    clash = [d for d in dupes if d in used]
    if clash:
        raise ReadError(where, None, f"column {clash[0]!r} appears more than once in the header")
    return layout


# Names a column may have (lower case): a header name close to one of these, but not one,
# is taken for a misspelling of it.
_KNOWN = _TS_NAMES + ("time", "date") + PRICE_COLUMNS + _SYMBOL_NAMES


def _misspelt(names: list[str], wanted: list[str]) -> list[tuple[str, str]]:
    """``(name, known)`` for each header name that is not a known column name but is
    close to one of ``wanted`` (``volumen`` for volume, ``clsoe`` for close)."""
    import difflib

    known = set(_KNOWN)
    out = []
    for name in names:
        key = name.strip().lower()
        if not key or key in known:
            continue
        hit = difflib.get_close_matches(key, [w.lower() for w in wanted], n=1, cutoff=0.75)
        if hit:
            out.append((name.strip(), hit[0]))
    return out


def _headerless_hint(names: list[str]) -> str:
    """When the "header" is a row of numbers: say the file has no header line (and name
    --format binance for a Binance kline row); else ""."""
    numbers = [n for n in names if re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?",
                                                n.strip())]
    if len(names) < 4 or len(numbers) < len(names) - 1:
        return ""
    first = names[0].strip()
    if len(names) == 12 and first.isdigit() and len(first) in (13, 16):
        return ("the first line is data, not a header: a Binance kline file (12 fields, "
                "the open time in epoch ms or µs first) reads with --format binance")
    return ("the first line is data, not a header: give --no-header and name the fields "
            "with --columns NAME,NAME,...")


@dataclass(frozen=True)
class _CsvHead:
    """What the first lines of a CSV file say."""

    delimiter: str
    fields: list[str]           # the names of the fields (the header's, or columns=)
    first: list[str] | None     # the first data row (None when none is seen)
    first_line: int             # its line
    skip: int                   # lines before the data: 1 with a header line, else 0
    cr_only: bool = False       # lines end in a bare CR (old Mac files), not LF or CR LF


def _sniff(path: Path, opts: ReadOptions) -> _CsvHead:
    """Delimiter, field names and first data row, from the first 64 KiB.

    Lines are decoded one by one, so that a byte that is not text is reported on its own
    line (by the careful reader when it is a data line)."""
    name = str(path)
    try:
        with _open_binary(path) as f:
            head = f.read(1 << 16)
            at_end = len(head) < (1 << 16) or not f.read(1)
    except _READ_ERRORS as exc:
        raise ReadError(name, None, f"cannot read: {_why(exc)}") from None
    # Old Mac files end their lines in a bare CR: no LF in the first 64 KiB, but a CR.
    cr_only = b"\n" not in head and b"\r" in head
    raw = head.split(b"\r" if cr_only else b"\n")
    if not at_end:
        raw = raw[:-1]              # a line cut at 64 KiB
    if raw and raw[-1] == b"":
        raw = raw[:-1]
    enc = _text_encoding(opts.encoding)

    def line_text(k: int) -> str | None:
        try:
            text = raw[k].decode(enc if k == 0 else opts.encoding if enc != "utf-8-sig"
                                 else "utf-8")
        except UnicodeDecodeError as exc:
            if k == 0 or (opts.header and k == 0):
                raise ReadError(name, k + 1, f"not {opts.encoding} text ({exc.reason} at "
                                f"byte {exc.start} of the line)") from None
            return None
        except LookupError:
            raise ValueError(f"unknown encoding {opts.encoding!r}") from None
        return text.rstrip("\r")

    names = opts.field_names
    first_text = line_text(0) if raw else None
    if first_text is None or (not first_text.strip() and (opts.header or names is None)):
        raise ReadError(name, 1 if raw else None,
                        "no header line (the file is empty)" if not raw else
                        "line 1 is empty; expected the header")
    if opts.delimiter is not None:
        delimiter = _DELIMITERS[opts.delimiter]
    else:
        counts = {d: first_text.count(d) for d in (",", ";", "\t", "|")}
        delimiter = max(counts, key=lambda d: counts[d])
        if counts[delimiter] == 0 and (names is None or len(names) > 1):
            what = "header" if opts.header else "first line"
            raise ReadError(name, 1, f"cannot tell the delimiter of the {what} "
                            f"{first_text[:60]!r}; give delimiter (--delimiter)")
    skip = 1 if opts.header else 0
    try:
        fields = list(names) if names is not None else \
            next(csv.reader([first_text], delimiter=delimiter))
    except csv.Error as exc:
        raise ReadError(name, 1, f"cannot parse the header line: {_csv_why(exc)}") from None
    first, first_line = None, skip + 1
    for k in range(skip, len(raw)):
        text = line_text(k)
        if text is None:
            break
        if text.strip():
            try:
                first = next(csv.reader([text], delimiter=delimiter))
            except csv.Error:
                first = None            # the careful reader names the line
            first_line = k + 1
            break
    return _CsvHead(delimiter, fields, first, first_line, skip, cr_only)


def _csv_why(exc: Exception) -> str:
    """Python's csv error in the file's words (a bare CR is the usual cause)."""
    text = str(exc)
    if "new-line character" in text:
        return "a carriage return (CR) inside the line, not at its end"
    return text
