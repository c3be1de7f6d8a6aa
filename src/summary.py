"""The one summary of a run, read off the results model: totals per interval, per symbol and
per session, the worst sessions with their longest gap and notes, as text tables (the command
line) or as a JSON document (``--json-summary``, and the export's manifest); per session the
rows per symbol and interval that ``SessionCoordinator`` hands out (:class:`SessionSummary`,
made by :meth:`Summary.session`); the backtest's totals (``backtest.UniverseResult``) are
:meth:`Summary.by_interval`.  Quality is ``results.quality_score`` everywhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .results import (
    KINDS,
    GapInfo,
    RunResult,
    kind_cells,
    kind_rows,
    local_time,
    quality_score,
)

WORST_SESSIONS = 5
SYMBOL_ROWS = 12


def _pooled_rows(sums: dict[str, Any], symbols: Any) -> list[dict[str, Any]]:
    """Pooled totals of several rows at once: ``sums`` holds a column per field (cells
    summed over symbols, over sessions or over both), ``symbols`` the symbols of each row;
    the quality and the data quality are computed over the columns in one call."""
    n = len(symbols)
    cols = {k: np.asarray(v) for k, v in sums.items()}
    expected = cols["expected"].astype(np.int64)
    quality = np.asarray(quality_score(cols["covered"].astype(np.float64), expected),
                         np.float64).tolist()
    ints = {k: cols[k].astype(np.int64).tolist() for k in ("bars", "gaps", "missing")}
    e = expected.tolist()
    kinds = kind_rows(cols, n)
    sym = np.asarray(symbols, np.int64).tolist()
    return [{
        "symbols": sym[i],
        "bars": ints["bars"][i],
        "gaps": ints["gaps"][i],
        "missing": ints["missing"][i],
        "expected": e[i],
        "quality": quality[i],
        **kinds[i],   # data quality and gap kinds (classify.py)
    } for i in range(n)]


@dataclass
class SessionSummary:
    """What one session came to, per symbol and interval (:meth:`Summary.session`)."""

    session: str
    symbols: int
    bars: int
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per symbol and interval
    result: RunResult | None = field(default=None, repr=False)

    @property
    def gaps(self) -> int:
        return sum(r["gaps"] for r in self.rows)

    @property
    def missing(self) -> int:
        return sum(r["missing"] for r in self.rows)

    @classmethod
    def of(cls, run: RunResult, k: int) -> "SessionSummary":
        """Session ``k`` of a run (``Summary(run).session(k)``)."""
        return Summary(run).session(k)


class Summary:
    """Totals of a run (see the module's docstring), reduced once per interval over symbols
    (per session) and over sessions (per symbol)."""

    def __init__(self, run: RunResult, out: str | None = None):
        self.run = run
        self.out = out
        self._minutes = run.session_minutes()   # read per session by notes()
        # Per interval: the cells that count (symbol in the session, interval of the symbol),
        # and bars, expected, covered, gaps, missing per cell, zero elsewhere.
        self._cells: dict[str, dict[str, np.ndarray]] = {}
        for name, t in run.intervals.items():
            n_k = t.bars.shape[1]
            keys = t.gap_symbol * n_k + t.gap_session
            mask = run.member & t.has[:, None]
            gaps = np.bincount(keys, minlength=t.bars.size).reshape(t.bars.shape)
            missing = np.bincount(keys, weights=t.gap_count,
                                  minlength=t.bars.size).reshape(t.bars.shape)
            every = bool(mask.all())   # (the usual case: nothing to zero)

            def counted(v: np.ndarray) -> np.ndarray:
                return v if every else np.where(mask, v, np.zeros((), v.dtype))

            self._cells[name] = {
                "mask": mask,
                "bars": counted(t.bars), "expected": counted(t.expected),
                "covered": counted(t.covered), "gaps": counted(gaps),
                "missing": counted(missing.astype(np.int64)),
            }
            self._cells[name].update({k: counted(v) for k, v in kind_cells(t).items()})
        self._per_session = {name: self._reduce(name, 0) for name in run.intervals}
        self._longest: dict[int, int] | None = None   # session -> its longest gap (base)

    def _sums(self, name: str, axis: int | None) -> dict[str, Any]:
        c = self._cells[name]
        # Every column of the cells: the counts, and the gap kinds' (classify.kind_cells).
        return {k: v.sum(axis=axis) for k, v in c.items() if k != "mask"}

    def _total(self, name: str) -> dict[str, Any]:
        """Pooled totals of an interval over every symbol and session."""
        sums = {k: [v] for k, v in self._sums(name, None).items()}
        return _pooled_rows(sums, [int(self._cells[name]["mask"].any(axis=1).sum())])[0]

    def _reduce(self, name: str, axis: int) -> list[dict[str, Any]]:
        """Pooled totals over symbols (axis 0: one per session) or over sessions (axis 1:
        one per symbol)."""
        mask = self._cells[name]["mask"]
        symbols = mask.sum(axis=0) if axis == 0 else mask.any(axis=1).astype(int)
        return _pooled_rows(self._sums(name, axis), symbols)

    # -- totals ---------------------------------------------------------------------------

    def by_interval(self) -> dict[str, dict[str, Any]]:
        return {name: self._total(name) for name in self.run.interval_names}

    def by_symbol(self) -> dict[str, dict[str, Any]]:
        rows = self._reduce(self.run.base, 1)
        out = {}
        for s, symbol in enumerate(self.run.symbols):
            row = dict(rows[s])
            row["sessions"] = int(self.run.member[s].sum())
            out[symbol] = row
        return out

    def by_session(self, k: int, name: str | None = None) -> dict[str, Any]:
        return self._per_session[name or self.run.base][k]

    def symbols(self) -> list[str]:
        return [s for i, s in enumerate(self.run.symbols) if self.run.member[i].any()]

    def session(self, k: int) -> SessionSummary:
        """Session ``k``: per member symbol and interval, its bars, gaps, missing bars,
        longest gap, expected slots, quality (NaN where not scored) and rejected bars."""
        run = self.run
        tz = run.calendar.tz
        rows = []
        bars = 0
        members = np.flatnonzero(run.member[:, k]).tolist()
        for s in members:
            for name in run.intervals_of(s):
                t = run.intervals[name]
                if not t.has[s]:
                    continue
                sl = t.gap_slice(s, k)
                counts = t.gap_count[sl]
                longest = None
                if len(counts):
                    i = sl.start + int(np.argmax(counts))
                    longest = GapInfo(local_time(int(t.gap_start[i]), tz),
                                      local_time(int(t.gap_end[i]), tz), int(t.gap_count[i]))
                expected = int(t.expected[s, k])
                rows.append({
                    "symbol": run.symbols[s], "interval": name, "bars": int(t.bars[s, k]),
                    "gaps": len(counts), "missing": int(counts.sum()),
                    "longest_gap": longest, "expected": expected,
                    "quality": (quality_score(float(t.covered[s, k]), expected)
                                if t.scored[s] else float("nan")),
                    "rejected": sum(run.rejected.get((s, k), {}).values()),
                })
            bars += int(run.intervals[run.base_of(s)].bars[s, k])
        return SessionSummary(str(run.sessions[k]), len(members), bars, rows, run)

    def longest_gap(self, k: int) -> tuple[str, int, int, int] | None:
        """(symbol, start, end, bars) of the session's longest base-interval gap."""
        t = self.run.intervals[self.run.base]
        longest = self._longest
        if longest is None:
            # Per session, its first gap of the most bars (as ``argmax`` over the session's
            # gaps in their order), for every session at once.
            ses, count = t.gap_session, t.gap_count
            most = np.zeros(self.run.windows.n_sessions, count.dtype)
            np.maximum.at(most, ses, count)
            first = np.flatnonzero(count == most[ses])   # gaps of their session's most bars
            labels, at = np.unique(ses[first], return_index=True)
            longest = self._longest = dict(zip(labels.tolist(), first[at].tolist()))
        if k not in longest:
            return None
        i = longest[k]
        return (self.run.symbols[int(t.gap_symbol[i])], int(t.gap_start[i]),
                int(t.gap_end[i]), int(t.gap_count[i]))

    def worst(self, n: int) -> list[tuple[int, dict[str, Any]]]:
        rows = [(k, self.by_session(k)) for k in range(len(self.run.sessions))]
        bad = [x for x in rows if x[1]["missing"] > 0 or x[1]["quality"] < 100.0]
        bad.sort(key=lambda x: (x[1]["quality"], -x[1]["missing"], str(self.run.sessions[x[0]])))
        return bad[:max(n, 0)]

    def usual_minutes(self) -> int:
        minutes = self.run.session_minutes()
        if not len(minutes):
            return 0
        values, counts = np.unique(minutes, return_counts=True)
        return int(values[np.argmax(counts)])

    def partial(self, k: int) -> tuple[int | None, int | None]:
        """Where the run's span cuts session ``k``: (from, to), None where it does not."""
        span = self.run.span
        if span is None:
            return None, None
        first, last = self.run.session_bounds(k)
        return (span[0] if first < span[0] < last else None,
                span[1] if first < span[1] < last else None)

    def notes(self, k: int, usual: int) -> list[str]:
        run = self.run
        tz = run.calendar.tz
        out = []
        minutes = int(self._minutes[k])   # computed once: per session it was quadratic
        if minutes < usual:
            out.append(f"short session ({minutes // 60}h{minutes % 60:02d})")
        since, until = self.partial(k)
        if since is not None:
            out.append(f"partial: from {_local(since, tz)} (data starts)")
        if until is not None:
            out.append(f"partial: to {_local(until, tz)} (data ends)")
        out.extend(run.notes[k])
        for symbol, n in sorted(run.unknown[k].items()):
            out.append(f"{plural(n, 'bar')} of {symbol} not stored (not in the session then)")
        rejected: dict[str, int] = {}
        for (s, kk), reasons in run.rejected.items():
            if kk == k:
                for reason, n in reasons.items():
                    rejected[reason] = rejected.get(reason, 0) + n
        for reason, n in sorted(rejected.items()):
            out.append(f"{plural(n, 'bar')} rejected ({reason})")
        return out

    # -- outputs --------------------------------------------------------------------------

    def to_json(self, worst: int = WORST_SESSIONS) -> dict[str, Any]:
        run = self.run
        usual = self.usual_minutes()
        minutes = run.session_minutes()
        tz = run.calendar.tz
        sessions = []
        for k in range(len(run.sessions)):
            since, until = self.partial(k)
            longest = self.longest_gap(k)
            sessions.append({
                "session": str(run.sessions[k]),
                "minutes": int(minutes[k]),
                "partial_from": None if since is None else local_time(since, tz).isoformat(),
                "partial_to": None if until is None else local_time(until, tz).isoformat(),
                "events": list(run.notes[k]),
                "unknown_bars": dict(run.unknown[k]),
                "intervals": {iv: _rounded(self.by_session(k, iv))
                              for iv in run.interval_names},
                "notes": self.notes(k, usual),
                "longest_gap": None if longest is None else {
                    "symbol": longest[0],
                    "start_time": local_time(longest[1], tz).strftime("%H:%M:%S"),
                    "end_time": local_time(longest[2], tz).strftime("%H:%M:%S"),
                    "bar_count": longest[3]},
            })
        return {
            "dataset": run.dataset,
            "calendar": run.calendar.name,
            "base_interval": run.base,
            "derived_intervals": list(run.derived),
            "out": self.out,
            "symbols": self.symbols(),
            "sessions": len(run.sessions),
            "totals": {iv: _rounded(v) for iv, v in self.by_interval().items()},
            "by_symbol": {s: _rounded(v) for s, v in self.by_symbol().items()},
            "worst_sessions": [str(run.sessions[k]) for k, _ in self.worst(worst)],
            "dropped": dict(run.dropped),
            **self._anomalies_json(),
            "per_session": sessions,
            "seconds": round(run.seconds, 3),
        }

    def _render_kinds(self, base: dict[str, Any]) -> list[str]:
        """Why bars are missing (the gap kinds of the base interval) and the two scores."""
        kinds = base["kinds"]
        rows = [[k, _n(kinds[k]["gaps"]), _n(kinds[k]["missing"])] for k in KINDS
                if kinds[k]["gaps"]]
        lines = ["", f"gap kinds ({self.run.base})"]
        if rows:
            lines += _table(["kind", "gaps", "missing"], rows, {1, 2})
        lines.append(f"completeness {_pct(base['quality'])}, data quality "
                     f"{_pct(base['data_quality'])}: {plural(base['lost'], 'slot')} lost to "
                     "outage, late_start or early_end; no_trade and halt do not count")
        return lines

    def _anomalies_json(self) -> dict[str, Any]:
        """``anomalies`` (issue 22): per kind the anomalies (each once), the sessions they
        touch and their bars, with the interval looked at; nothing when the detectors were
        off."""
        a = self.run.anomalies
        if a is None:
            return {}
        return {"anomalies": {"interval": a.interval, "count": int((a.part == 0).sum()),
                              "kinds": a.counts()}}

    def _render_anomalies(self) -> list[str]:
        """The table of anomalies per kind (bars that are there but not real)."""
        a = self.run.anomalies
        if a is None:
            return []
        counts = a.counts()
        rows = [[k, _n(c["count"]), _n(c["sessions"]), _n(c["bars"])]
                for k, c in counts.items() if c["count"] or c["sessions"]]
        lines = ["", f"anomalies ({a.interval}): bars that are there but not real"]
        if rows:
            lines += _table(["kind", "anomalies", "sessions", "bars"], rows, {1, 2, 3})
            filled = a.kind == 0
            if filled.any():
                lines.append(f"{plural(int(a.bar_count[filled].sum()), 'filled bar')} are "
                             "hidden gaps (a gap kind each in the documents and the "
                             "dataset)")
        else:
            lines.append("none found")
        return lines

    def render(self, worst: int = WORST_SESSIONS, prog: str = "sessiondata") -> str:
        """The summary as text tables."""
        run = self.run
        tz = run.calendar.tz
        lines = []
        symbols = self.symbols()
        labels = [str(s) for s in run.sessions]
        lines.append(f"{prog} run: {run.dataset}")
        lines.append(f"calendar {run.calendar.name}, base {run.base}, derived "
                     f"{', '.join(run.derived) or 'none'}; sessions "
                     f"{labels[0] if labels else '-'} .. {labels[-1] if labels else '-'}")
        lines.append("")
        totals = self.by_interval()
        base = totals[run.base]
        lines += _table(["symbols", "sessions", "bars", "gaps", "missing", "quality"],
                        [[_n(len(symbols)), _n(len(labels)), _n(base["bars"]),
                          _n(base["gaps"]), _n(base["missing"]), _pct(base["quality"])]],
                        {0, 1, 2, 3, 4, 5})
        lines.append("")
        classified = "kinds" in base
        lines += _table(["interval", "bars", "expected", "gaps", "missing", "quality"]
                        + (["data quality"] if classified else []),
                        [[iv, _n(t["bars"]), _n(t["expected"]), _n(t["gaps"]),
                          _n(t["missing"]), _pct(t["quality"])]
                         + ([_pct(t["data_quality"])] if classified else [])
                         for iv, t in totals.items()],
                        {1, 2, 3, 4, 5, 6})
        if classified:
            lines += self._render_kinds(base)
        lines += self._render_anomalies()
        by_symbol = self.by_symbol()
        if len(by_symbol) > 1:
            ranked = sorted(by_symbol.items(), key=lambda x: (x[1]["quality"], x[0]))
            shown = ranked[:SYMBOL_ROWS]
            lines.append("")
            lines.append(f"symbols ({run.base})" if len(ranked) <= SYMBOL_ROWS else
                         f"worst {len(shown)} of {len(ranked)} symbols ({run.base})")
            lines += _table(["symbol", "sessions", "bars", "gaps", "missing", "quality"],
                            [[s, _n(t["sessions"]), _n(t["bars"]), _n(t["gaps"]),
                              _n(t["missing"]), _pct(t["quality"])]
                             for s, t in sorted(shown, key=lambda x: x[0])],
                            {1, 2, 3, 4, 5})
        usual = self.usual_minutes()
        worst_rows = self.worst(worst)
        if worst > 0:
            lines.append("")
            if worst_rows:
                lines.append(f"worst sessions ({run.base})")
                rows = []
                for k, t in worst_rows:
                    longest = self.longest_gap(k)
                    gap = "-"
                    if longest is not None:
                        gap = (f"{gap_times(longest[1], longest[2], labels[k], tz)} "
                               f"({longest[3]})")
                        if len(symbols) > 1:
                            gap = f"{longest[0]} {gap}"
                    rows.append([labels[k], _n(t["symbols"]), _n(t["bars"]), _n(t["gaps"]),
                                 _n(t["missing"]), _pct(t["quality"]), gap,
                                 "; ".join(self.notes(k, usual))])
                lines += _table(["session", "symbols", "bars", "gaps", "missing", "quality",
                                 "longest gap", "notes"], rows, {1, 2, 3, 4, 5})
            else:
                lines.append(f"worst sessions ({run.base}): none, no bar is missing")
        worst_set = {k for k, _ in worst_rows}
        others = [(k, self.notes(k, usual)) for k in range(len(labels)) if k not in worst_set]
        others = [(k, n) for k, n in others if n]
        if others:
            lines.append("")
            lines.append("other sessions of note")
            for k, notes in others:
                lines.append(f"{labels[k]}  {'; '.join(notes)}")
        if run.dropped:
            lines.append("")
            total = sum(run.dropped.values())
            reasons = ", ".join(f"{k}: {_n(v)}" for k, v in sorted(run.dropped.items()))
            lines.append(f"dropped on read (--on-bad drop): {plural(total, 'row')} ({reasons})")
        lines.append("")
        if self.out is not None:
            lines.append(f"wrote {plural(len(labels), 'session')} to {self.out} in "
                         f"{run.seconds:.2f} s")
        return "\n".join(lines)


def gap_times(start_ns: int, end_ns: int, session: str, tz: Any) -> str:
    """``HH:MM-HH:MM`` of a gap in the calendar's zone, each end that falls on another day
    than the session's date saying which (``Sun 18:00``): an overnight session starts the
    evening before its date, and a bare time there reads as the wrong day."""
    out = []
    for ns in (start_ns, end_ns):
        t = local_time(ns, tz)
        out.append(t.strftime("%H:%M") if t.date().isoformat() == session
                   else t.strftime("%a %H:%M"))
    return "-".join(out)


def _local(ns: int, tz: Any) -> str:
    t = local_time(ns, tz)
    return f"{t.strftime('%Y-%m-%d %H:%M')} {t.tzname()}"


def _n(value: Any) -> str:
    return f"{int(value):,}"


def plural(n: int, noun: str) -> str:
    return f"{_n(n)} {noun}" if n == 1 else f"{_n(n)} {noun}s"


def _pct(value: float) -> str:
    return f"{value:.2f}%"


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            if i in right:
                out.append(cell.rjust(widths[i]))
            else:
                out.append(cell if i == len(cells) - 1 else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    return [line(headers)] + [line(r) for r in rows]
