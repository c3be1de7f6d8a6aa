"""Exports: the session's JSON and one CSV per symbol and interval, written atomically, and a
validation that reads an export back and checks it.

Layout of one session's export folder::

    <folder>/session.json                    SessionData.to_json()
    <folder>/bars/<symbol>.<interval>.csv    ts,time,open,high,low,close,volume[,count,coverage]

A file is written to a temporary name in the same folder and renamed over the target, so an
interrupted export leaves the previous file or none, never half of one.  Symbol names are
percent-encoded into file names, so no symbol can write outside the folder.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable
from urllib.parse import quote, unquote

import numpy as np

from .bars import BadBarError, Bars

if TYPE_CHECKING:  # pragma: no cover
    from .session import SessionData

CSV_HEADER = ["ts", "time", "open", "high", "low", "close", "volume"]
DERIVED_HEADER = CSV_HEADER + ["count", "coverage"]
_SAFE = "-_^=+@,"


# File systems cap a name at 255 bytes; the CSV suffix and the temporary file's affixes need
# about 30 more.  Longer encodings keep a prefix and a digest of the whole symbol after "%~",
# which percent-encoding never produces (its "%" is always followed by two hex digits).
_MAX_NAME = 200


def _encode(symbol: str) -> str:
    return quote(symbol, safe=_SAFE).replace(".", "%2E")


def symbol_filename(symbol: str) -> str:
    """A file name for a symbol: percent-encoded, never a path, never hidden, never too long."""
    name = _encode(symbol)
    if not name or name in (".", ".."):
        raise ValueError(f"symbol {symbol!r} cannot be a file name")
    if len(name) > _MAX_NAME:
        parts, used = [], 0
        for ch in symbol:  # whole characters only, so the prefix decodes
            part = _encode(ch)
            if used + len(part) > _MAX_NAME - 34:
                break
            parts.append(part)
            used += len(part)
        digest = hashlib.sha256(symbol.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        name = "".join(parts) + "%~" + digest
    return name


def filename_symbol(name: str) -> str:
    """The symbol a file name stands for (inverse of ``symbol_filename``; a shortened name
    keeps only the symbol's beginning)."""
    return unquote(name.split("%~", 1)[0])


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8",
                                                            "newline": ""})) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def dumps_compact(obj: Any) -> str:
    """JSON text with no indentation (the C encoder: several times faster than indent=)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write a JSON document atomically (UTF-8; ``indent=None`` for compact output)."""
    if indent is None:
        return write_atomic(path, dumps_compact(obj))
    return write_atomic(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def _iso_utc(ns: np.ndarray) -> list[str]:
    return [str(t) + "Z" for t in ns.astype("datetime64[ns]").astype("datetime64[s]")]


def bars_to_csv(bars: Bars) -> str:
    """CSV text of bars; floats are written in their shortest exact form (``repr``), so the
    file reads back to the same values."""
    derived = bars.count is not None and bars.coverage is not None
    header = DERIVED_HEADER if derived else CSV_HEADER
    columns = [bars.ts.tolist(), _iso_utc(bars.ts)]
    columns += [getattr(bars, c).tolist() for c in ("open", "high", "low", "close", "volume")]
    if derived:
        columns += [bars.count.tolist(), bars.coverage.tolist()]
    lines = [",".join(header)]
    lines += [",".join(map(repr_field, row)) for row in zip(*columns)]
    return "\n".join(lines) + "\n"


def repr_field(value) -> str:
    return value if isinstance(value, str) else repr(value)


def write_bars_csv(path: str | os.PathLike, bars: Bars) -> Path:
    return write_atomic(path, bars_to_csv(bars))


def read_bars_csv(path: str | os.PathLike) -> Bars:
    """Read a CSV written by ``write_bars_csv`` back (validating it)."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header not in (CSV_HEADER, DERIVED_HEADER):
            raise ValueError(f"{path}: unexpected header {header}")
        rows = list(reader)
    width = len(header)
    for i, row in enumerate(rows, start=2):
        if len(row) != width:
            raise ValueError(f"{path}, line {i}: {len(row)} fields, expected {width}")
    cols = list(zip(*rows)) if rows else [()] * width
    try:
        ts = np.array(cols[0], dtype=np.int64)
        floats = [np.array(cols[k], dtype=np.float64) for k in range(2, 7)]
        count = np.array(cols[7], dtype=np.int64) if width == 9 else None
        coverage = np.array(cols[8], dtype=np.float64) if width == 9 else None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    iso = _iso_utc(ts)
    for i, (a, b) in enumerate(zip(iso, cols[1])):
        if a != b:
            raise ValueError(f"{path}, line {i + 2}: time {b!r} does not match ts ({a})")
    try:
        return Bars(ts, *floats, count=count, coverage=coverage)
    except BadBarError as exc:  # say which file: validate_export reports the message alone
        raise BadBarError(f"{path}: {exc}", exc.row, exc.fault) from None


def export_session(session_data: "SessionData", folder: str | os.PathLike, *,
                   csv_bars: bool = True) -> dict[str, Any]:
    """Write ``session.json`` and, with ``csv_bars``, one CSV per symbol and interval.

    Returns the JSON document written.
    """
    folder = Path(folder)
    doc = session_data.to_json()
    if csv_bars:
        for symbol, symbol_doc in doc["symbols"].items():
            entry = session_data.get_symbol_data(symbol)
            if entry is None:  # removed while exporting
                continue
            for interval in entry.intervals():
                target = folder / "bars" / f"{symbol_filename(symbol)}.{interval}.csv"
                if target.resolve().parent != (folder / "bars").resolve():
                    raise ValueError(f"symbol {symbol!r} would write outside {folder}")
                bars = entry.bars(interval)
                write_bars_csv(target, bars)
                # Bars may keep arriving while the files are written: the JSON, written last,
                # states what each CSV holds.
                interval_doc = symbol_doc["intervals"].get(interval)
                if interval_doc is not None:
                    interval_doc["bars"] = len(bars)
    write_json(folder / "session.json", doc)
    return doc


def validate_export(folder: str | os.PathLike,
                    session_data: "SessionData | None" = None) -> list[str]:
    """Read an export back and check it: JSON schema, CSV format, order, bar invariants,
    gap arithmetic, and (given ``session_data``) that it matches what is held.

    Returns the problems found (empty when the export is sound).
    """
    folder = Path(folder)
    problems: list[str] = []
    doc_path = folder / "session.json"
    try:
        doc = json.loads(doc_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{doc_path}: cannot read: {exc}"]
    for key in ("session", "calendar", "timezone", "symbols"):
        if key not in doc:
            problems.append(f"{doc_path}: missing key {key!r}")
    symbols = doc.get("symbols", {})
    for symbol, entry in symbols.items():
        where = f"{doc_path}: {symbol}"
        for name, iv in entry.get("intervals", {}).items():
            problems += _check_gaps(f"{where} {name}", iv.get("gaps"))
            q = iv.get("quality")
            if q is not None:
                if not 0.0 <= q.get("score", -1) <= 100.0 + 1e-9:
                    problems.append(f"{where} {name}: score {q.get('score')} out of [0, 100]")
                if q.get("expected", 0) != q.get("present", 0) + q.get("missing", 0):
                    problems.append(f"{where} {name}: expected != present + missing")
            csv_path = folder / "bars" / f"{symbol_filename(symbol)}.{name}.csv"
            if not csv_path.exists():
                continue
            try:
                bars = read_bars_csv(csv_path)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            if len(bars) != iv.get("bars"):
                problems.append(f"{csv_path}: {len(bars)} bars, session.json says {iv.get('bars')}")
            if session_data is not None:
                held = session_data.get_symbol_data(symbol)
                if held is not None and not held.bars(name).equals(bars):
                    problems.append(f"{csv_path}: differs from the bars held")
    return problems


def _check_gaps(where: str, gaps: Any) -> list[str]:
    if not isinstance(gaps, dict):
        return [f"{where}: no gaps object"]
    out = []
    ranges = gaps.get("ranges", [])
    if gaps.get("gap_count") != len(ranges):
        out.append(f"{where}: gap_count {gaps.get('gap_count')} != {len(ranges)} ranges")
    if gaps.get("missing_bars") != sum(r.get("bar_count", 0) for r in ranges):
        out.append(f"{where}: missing_bars does not add up")
    for r in ranges:
        if set(r) != {"start_time", "end_time", "bar_count"} or r["bar_count"] < 1:
            out.append(f"{where}: malformed range {r}")
    return out


def iter_session_folders(root: str | os.PathLike) -> Iterable[Path]:
    """Every folder under ``root`` (``root`` included) that holds a ``session.json``."""
    root = Path(root)
    return sorted(p.parent for p in root.rglob("session.json"))
