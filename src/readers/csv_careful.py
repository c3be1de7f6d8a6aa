"""The careful CSV path: line by line, with exact line numbers and reasons; only for files
the fast path cannot vouch for."""

from __future__ import annotations

import csv
import io

import numpy as np

from ..bars import PRICE_COLUMNS

from .base import _CAREFUL_CHUNK, _open_binary, _READ_ERRORS, _text_encoding, _why, ReadError
from .layout import _csv_why, _CsvHead


def _decoded_lines(f, encoding: str, bad_lines: list):
    """The lines of a binary stream, decoded one by one; a line that is not text in
    ``encoding`` is noted in ``bad_lines`` (line, reason) and given as an empty line."""
    enc = _text_encoding(encoding)
    for k, raw in enumerate(f, start=1):
        try:
            yield raw.decode(enc if k == 1 else ("utf-8" if enc == "utf-8-sig" else enc))
        except UnicodeDecodeError as exc:
            bad_lines.append((k, f"not {encoding} text ({exc.reason} at byte {exc.start} of "
                                 "the line)"))
            yield "\n"


def _csv_careful(path, opts, collector, source, head: _CsvHead, layout, symbol, parser):
    """Line by line, with exact line numbers and reasons (only for irregular files)."""
    name = str(path)
    header = head.fields
    width = len(header)
    pos = {c: header.index(c) for c in layout.needed}
    time_idx = [pos[c] for c in layout.time_columns]
    price_idx = [pos[layout.prices[c]] if c in layout.prices else None for c in PRICE_COLUMNS]
    sym_idx = pos[layout.symbol] if layout.symbol else None
    rows: list[list[str]] = []
    lines: list[int] = []
    problems: list[tuple[int, str, str]] = []
    not_text: list[tuple[int, str]] = []
    line = head.skip
    try:
        with _open_binary(path) as f:
            lines_in = io.BytesIO(f.read().replace(b"\r", b"\n")) if head.cr_only else f
            reader = csv.reader(_decoded_lines(lines_in, opts.encoding, not_text),
                                delimiter=head.delimiter)
            for _ in range(head.skip):
                try:
                    next(reader, None)
                except csv.Error:
                    pass                # the header was read by the sniffer already
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    # One unreadable line (a bare CR inside it, say); the next goes on.
                    problems.append((reader.line_num, "unreadable line",
                                     f"cannot parse the line: {_csv_why(exc)}"))
                    continue
                line = reader.line_num
                if not_text:
                    problems.extend((k, "not text", why) for k, why in not_text)
                    not_text.clear()
                if not row:
                    continue
                if len(row) != width:
                    hint = " (a truncated line?)" if len(row) < width else ""
                    if line == head.first_line and opts.field_names is None:
                        # The first row already differs: the header is the likelier fault.
                        hint = " (if the header is wrong, name the fields with --columns " \
                            "NAME,NAME,...)"
                    what = "the header has" if opts.header and opts.field_names is None \
                        else "columns= names"
                    problems.append((line, "wrong field count",
                                     f"{len(row)} fields, {what} {width}{hint}"))
                    continue
                rows.append(row)
                lines.append(line)
                if len(rows) >= _CAREFUL_CHUNK:
                    _careful_chunk(collector, source, rows, lines, problems, time_idx,
                                   price_idx, sym_idx, header, symbol, parser, name)
                    rows, lines, problems = [], [], []
            problems.extend((k, "not text", why) for k, why in not_text)
    except _READ_ERRORS as exc:
        raise ReadError(name, None, f"cannot read: {_why(exc)}") from None
    _careful_chunk(collector, source, rows, lines, problems, time_idx, price_idx, sym_idx,
                   header, symbol, parser, name)


def _careful_chunk(collector, source, rows, lines, problems, time_idx, price_idx, sym_idx,
                   header, symbol, parser, name):
    n = len(rows)
    ok = np.ones(n, bool)
    cols = [np.empty(n, np.float64) for _ in PRICE_COLUMNS]
    text = np.empty(n, dtype=object)
    syms = np.empty(n, dtype=object) if sym_idx is not None else None
    for i, row in enumerate(rows):
        issue = None
        parts = [row[k].strip() for k in time_idx]
        for k, part in zip(time_idx, parts):
            if not part:
                issue = ("missing field", f"missing field {header[k]!r} (empty)")
                break
        text[i] = " ".join(parts)
        if issue is None and syms is not None:
            s = row[sym_idx].strip()
            if not s:
                issue = ("missing field", f"missing field {header[sym_idx]!r} (empty)")
            syms[i] = s
        if issue is None:
            for j, k in enumerate(price_idx):
                if k is None:           # no volume column
                    cols[j][i] = np.nan
                    continue
                raw = row[k].strip()
                if not raw:
                    issue = ("missing field", f"missing field {header[k]!r} (empty)")
                    break
                try:
                    cols[j][i] = float(raw)
                except ValueError:
                    issue = ("bad number", f"bad number {raw!r} in column {header[k]!r}")
                    break
        if issue is not None:
            ok[i] = False
            problems.append((lines[i], *issue))
    line_arr = np.asarray(lines, dtype=np.int64)
    idx = np.flatnonzero(ok)
    ns = np.zeros(n, np.int64)
    if len(idx):
        try:
            sub_ns, bad, reasons = parser.parse_text(text[idx])
        except ValueError as exc:
            raise ReadError(name, int(line_arr[idx[0]]), str(exc)) from None
        ns[idx] = sub_ns
        for i, (category, reason) in zip(idx[bad].tolist(), reasons):
            ok[i] = False
            problems.append((int(line_arr[i]), category, reason))
    collector.handle(source, problems)
    keep = np.flatnonzero(ok)
    collector.add(source, symbol if symbol is not None else syms[keep], ns[keep],
                  [c[keep] for c in cols], line_arr[keep], n)
