"""The ``sessiondata`` command line.

    sessiondata run [DATA] --calendar XNYS --base 1m --derived 5m,15m,1h --out DIR
    sessiondata validate DIR

``run`` reads every symbol's bars from DATA (a CSV or Parquet file, or a folder of them; the
embedded sample when DATA is not given), runs each trading session of the data through a
``SessionCoordinator``, exports each session (``DIR/<session>/session.json`` and the bars as
CSV) and prints a summary: symbols, sessions, bars, gaps, missing bars, quality and the worst
sessions.  ``validate`` reads such an export back and checks it.

Partial sessions.  Data rarely starts at a session's open and ends at a close.  The session
the data ends in is scored only up to the data's end (the last bar's close): its later slots
are not expected yet, so they are neither gaps nor missing.  Likewise the session the data
starts in is scored only from the data's start: slots that start before the first bar are not
expected (a derived bucket that straddles the start is not scored either, as a bucket that
straddles the end is not).  A symbol added in the middle of a session is scored from the
moment it was added.  A session cut so is marked partial in the summary.  Both cuts are
dataset-wide: a symbol whose data starts later than the others' has a real gap.

Exit codes: 0 done; 1 ``validate`` found problems; 2 bad input or usage (one line on stderr
says why; ``--debug`` shows the traceback); 3 an internal error; 130 interrupted.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from . import readers, sample
from .api import trim_grid  # noqa: F401  (re-exported for older callers)
from .bars import BadBarError
from .calendar import Calendar
from .coordinator import SessionCoordinator
from .export import export_session, iter_session_folders, validate_export, write_json
from .intervals import check_derivable, parse_interval

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130

WORST_SESSIONS = 5
SYMBOL_ROWS = 12
PROG = "sessiondata"


class CliError(Exception):
    """A one-line reason to stop, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse's name
        raise CliError(f"{message} (see '{self.prog} --help')", EXIT_BAD_INPUT)


def _common_options(default: object) -> argparse.ArgumentParser:
    """The options every command takes, before or after its name."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=default,
                        help="show the traceback of an error")
    common.add_argument("--quiet", "-q", action="store_true", default=default,
                        help="print nothing but errors (no progress, no summary)")
    return common


def build_parser() -> argparse.ArgumentParser:
    # The main parser sets the defaults; a subcommand's copy of an option sets it only when
    # given (SUPPRESS), or its default would overwrite `sessiondata -q run`'s -q.
    parser = _Parser(prog=PROG, description="Session-aware bar data: gaps, quality, exports.",
                     parents=[_common_options(False)])
    common = _common_options(argparse.SUPPRESS)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser(
        "run", parents=[common], help="run the sessions of a data folder (or the sample)",
        description="Run every trading session of DATA (a CSV or Parquet file, or a folder of "
                    "them; the embedded sample when omitted) through a SessionCoordinator, "
                    "export each session and print a summary.")
    run.add_argument("data", nargs="?", metavar="DATA",
                     help="a data file or a folder of them (default: the embedded sample)")
    run.add_argument("--calendar", metavar="CAL",
                     help="exchange code (XNYS, CME_GLOBEX, ...), '24/7' (or 'always'), or "
                          "'weekly:TZ,HH:MM,HH:MM[,Mon-Fri]'; required with DATA")
    run.add_argument("--base", default="1m", metavar="IV",
                     help="the bars' interval (default 1m)")
    run.add_argument("--derived", default="5m,15m,1h", metavar="IV,IV",
                     help="derived intervals, comma-separated, or 'none' (default 5m,15m,1h)")
    run.add_argument("--out", default="sessiondata-out", metavar="DIR",
                     help="export folder: DIR/<session>/session.json and bars/*.csv "
                          "(default ./sessiondata-out)")
    run.add_argument("--no-csv", action="store_true", help="export the JSON only")
    run.add_argument("--start", metavar="DATE", help="first session to run (YYYY-MM-DD)")
    run.add_argument("--end", metavar="DATE", help="last session to run (YYYY-MM-DD)")
    run.add_argument("--tz", default="UTC", metavar="TZ",
                     help="time zone of naive timestamps (default UTC), e.g. Europe/Berlin")
    run.add_argument("--stamp", choices=("start", "end"), default="start",
                     help="a row's time is the bar's start (default) or its end; end-stamped "
                          "bars are shifted back by the base interval")
    run.add_argument("--ts-format", metavar="FMT",
                     help="'auto' (ISO 8601 or an integer epoch, the default), a strptime "
                          "format such as '%%d.%%m.%%Y %%H:%%M', or an epoch unit s|ms|us|ns")
    run.add_argument("--ts-column", metavar="NAME", help="the timestamp column")
    run.add_argument("--date-column", metavar="NAME",
                     help="a date column, joined with --time-column")
    run.add_argument("--time-column", metavar="NAME", help="a time-of-day column")
    run.add_argument("--symbol-column", metavar="NAME",
                     help="the symbol column (default: 'symbol' or 'ticker' when present)")
    run.add_argument("--symbol", metavar="NAME",
                     help="the symbol of a single file without a symbol column (default: the "
                          "file name's stem)")
    run.add_argument("--delimiter", metavar="D",
                     help="CSV delimiter: ',', ';', 'tab' or '|' (default: from the header)")
    run.add_argument("--format", metavar="NAME",
                     help="vendor files read directly: lean (QuantConnect LEAN equity minute "
                          "zips; lean:trade, lean:mid, lean:bid, lean:ask choose trade or quote "
                          "bars), databento (DBN ohlcv-1m, .dbn or .dbn.zst; needs "
                          "sessiondata[databento]), binance (kline CSVs); default: CSV or "
                          "Parquet by the file suffix")
    run.add_argument("--on-bad", choices=("raise", "drop"), default="raise",
                     help="a malformed or impossible row stops the run (raise, the default) "
                          "or is dropped and counted (drop)")
    run.add_argument("--json-summary", metavar="FILE", help="also write the summary as JSON")
    run.add_argument("--worst", type=int, default=WORST_SESSIONS, metavar="N",
                     help=f"how many worst sessions to list (default {WORST_SESSIONS})")

    val = sub.add_parser(
        "validate", parents=[common], help="check the session folders of a run's output",
        description="Read every session folder under DIR back (session.json and the CSV "
                    "bars) and check it; exit 1 when any problem is found.")
    val.add_argument("dir", metavar="DIR", help="the --out folder of a run")
    return parser


def _version() -> str:
    try:
        from . import __version__
        return __version__
    except Exception:  # pragma: no cover - only when the package is broken
        return "?"


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        debug = getattr(args, "debug", debug)
        if args.command == "run":
            return cmd_run(args)
        if args.command == "validate":
            return cmd_validate(args)
        build_parser().print_help()
        return EXIT_BAD_INPUT
    except CliError as exc:
        if debug:
            traceback.print_exc()
        _fail(str(exc))
        return exc.code
    except KeyboardInterrupt:
        _fail("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our output went away (e.g. `| head`): nothing more to say.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except (ValueError, TypeError, OSError, ImportError, LookupError) as exc:
        if debug:
            traceback.print_exc()
        _fail(_one_line(exc))
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if debug:
            traceback.print_exc()
        _fail(f"internal error: {type(exc).__name__}: {_one_line(exc)} (run with --debug for "
              "the traceback)")
        return EXIT_INTERNAL


def _one_line(exc: BaseException) -> str:
    text = str(exc) if not isinstance(exc, KeyError) else str(exc.args[0] if exc.args else exc)
    text = " ".join(text.split())
    if isinstance(exc, ImportError) and not text:
        text = "a required package is missing"
    if isinstance(exc, OSError) and getattr(exc, "filename", None) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    return text or type(exc).__name__


def _fail(message: str) -> None:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# Calendars and intervals
# --------------------------------------------------------------------------------------------


def parse_calendar(spec: str):
    """A Calendar from ``XNYS`` / ``CME_GLOBEX`` / ``24/7`` / ``always`` /
    ``weekly:TZ,HH:MM,HH:MM[,DAYS]``."""
    text = spec.strip()
    if text.lower() in ("24/7", "always", "24x7"):
        return Calendar.always()
    if text.lower().startswith("weekly:"):
        parts = [p.strip() for p in text[len("weekly:"):].split(",", 3)]
        if len(parts) < 3 or not all(parts[:3]):
            raise CliError(f"--calendar {spec!r}: expected weekly:TZ,HH:MM,HH:MM[,Mon-Fri], "
                           "e.g. weekly:Europe/Berlin,09:00,17:30")
        days = parts[3] if len(parts) > 3 and parts[3] else "Mon-Fri"
        try:
            return Calendar.weekly(parts[0], parts[1], parts[2], days)
        except (ValueError, TypeError) as exc:
            raise CliError(f"--calendar {spec!r}: {exc}") from None
    try:
        return Calendar.exchange(text)
    except ImportError:
        raise CliError(f"--calendar {text}: exchange calendars need the exchange_calendars "
                       "package: pip install 'sessiondata[calendars]' (or use '24/7' or "
                       "'weekly:TZ,HH:MM,HH:MM')") from None
    except ValueError as exc:
        raise CliError(f"--calendar: {exc}") from None


def parse_intervals(base: str, derived: str) -> tuple[str, list[str]]:
    try:
        base_iv = parse_interval(base)
        if base_iv.is_session:
            raise ValueError("the base interval cannot be '1d'; use an intraday interval")
        names = [] if derived.strip().lower() in ("", "none") else \
            [d.strip() for d in derived.split(",") if d.strip()]
        out = []
        for name in names:
            iv = parse_interval(name)
            check_derivable(base_iv, iv)
            if iv != base_iv and iv.name not in out:
                out.append(iv.name)
    except ValueError as exc:
        raise CliError(f"--base/--derived: {exc}") from None
    return base_iv.name, out


def _parse_date(text: str | None, option: str) -> np.datetime64 | None:
    if text is None:
        return None
    try:
        return np.datetime64(_dt.date.fromisoformat(text.strip()), "D")
    except ValueError:
        raise CliError(f"{option} {text!r} is not a date YYYY-MM-DD") from None


# --------------------------------------------------------------------------------------------
# The data of a run
# --------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    """What ``run`` runs over: bars per symbol, where they came from, and symbol events."""

    label: str
    bars: dict
    read: Any = None                      # a readers.ReadResult, for file and line in errors
    events: list = field(default_factory=list)   # sample.SymbolEvent
    dropped: dict = field(default_factory=dict)


def load_dataset(args, calendar, base: str) -> Dataset:
    """Read DATA (or generate the sample) and check the bars against the calendar."""
    if args.data is None:
        smp = sample.generate(calendar=calendar)
        return Dataset("the embedded sample", dict(smp.bars), None, list(smp.events))
    options = dict(interval=base, stamp=args.stamp, tz=args.tz, ts_format=args.ts_format,
                   ts_column=args.ts_column, date_column=args.date_column,
                   time_column=args.time_column, symbol_column=args.symbol_column,
                   symbol=args.symbol, delimiter=args.delimiter, on_bad=args.on_bad)
    result = readers.read_bars(args.data, format=getattr(args, "format", None), **options)
    result.check_sessions(calendar, base, args.on_bad)
    bars = {s: b for s, b in result.bars.items() if len(b)}
    return Dataset(str(args.data), bars, result, [], dict(result.dropped))


# --------------------------------------------------------------------------------------------
# Sessions: the plan, the cut, the run
# --------------------------------------------------------------------------------------------


@dataclass
class SessionRecord:
    """One session of the run, as the summary reports it."""

    session: str
    minutes: int
    summary: Any                            # coordinator.SessionSummary
    since_ns: int | None = None             # scored from (the data starts inside it)
    until_ns: int | None = None             # scored to (the data ends inside it)
    events: list[str] = field(default_factory=list)
    unknown_bars: dict = field(default_factory=dict)
    longest_gap: tuple | None = None        # (symbol, GapInfo) of the base interval

    def interval_totals(self, interval: str) -> dict[str, float]:
        rows = [r for r in self.summary.rows if r["interval"] == interval]
        return _pool(rows)


def _pool(rows: list[dict]) -> dict[str, float]:
    """Bars, gaps, missing, expected and quality pooled over summary rows."""
    expected = sum(r["expected"] for r in rows)
    covered = sum(r["expected"] * r["quality"] / 100.0 for r in rows
                  if r["expected"] and not math.isnan(r["quality"]))
    return {
        "symbols": len({r["symbol"] for r in rows}),
        "bars": sum(r["bars"] for r in rows),
        "gaps": sum(r["gaps"] for r in rows),
        "missing": sum(r["missing"] for r in rows),
        "expected": expected,
        "quality": 100.0 * covered / expected if expected else 100.0,
    }


def stop_session(coordinator, *, since_ns: Mapping[str, int] | None = None,
                 until_ns: int | None = None, export_to=None, csv_bars: bool = True):
    """``coordinator.stop``, scoring some symbols only from a time on (``since_ns`` maps
    symbols to the instant their scoring starts: the data's start in the first session, the
    moment a symbol was added)."""
    return coordinator.stop(since_ns=since_ns or None, until_ns=until_ns,
                            export_to=export_to, csv_bars=csv_bars)


class _RunCoordinator(SessionCoordinator):
    """A SessionCoordinator that also notes the session's longest base-interval gap when it
    sums the session up (``stop`` calls ``summary`` while the gaps are still held)."""

    longest_gap = None

    def summary(self):
        result = super().summary()
        sd = self.session_data
        best = None
        for symbol in sd.get_active_symbols():
            entry = sd.get_symbol_data(symbol)
            if entry is None:
                continue
            for gap in entry.bar_gaps.get(entry.base_interval, []):
                if best is None or gap.bar_count > best[1].bar_count:
                    best = (symbol, gap)
        self.longest_gap = best
        return result


@dataclass
class RunReport:
    """Everything the summary shows."""

    dataset: str
    calendar: str
    tz: Any
    base: str
    derived: list[str]
    out: str | None
    records: list[SessionRecord]
    dropped: dict
    seconds: float = 0.0

    @property
    def intervals(self) -> list[str]:
        return [self.base] + list(self.derived)

    def symbols(self) -> list[str]:
        seen: dict[str, None] = {}
        for rec in self.records:
            for row in rec.summary.rows:
                seen.setdefault(row["symbol"], None)
        return list(seen)

    def by_interval(self) -> dict[str, dict[str, float]]:
        return {iv: _pool([r for rec in self.records for r in rec.summary.rows
                           if r["interval"] == iv]) for iv in self.intervals}

    def by_symbol(self) -> dict[str, dict[str, float]]:
        out: dict[str, list] = {}
        for rec in self.records:
            for r in rec.summary.rows:
                if r["interval"] == self.base:
                    out.setdefault(r["symbol"], []).append(r)
        result = {}
        for symbol, rows in out.items():
            pooled = _pool(rows)
            pooled["sessions"] = len(rows)
            result[symbol] = pooled
        return result

    def worst(self, n: int) -> list[tuple[SessionRecord, dict[str, float]]]:
        scored = [(rec, rec.interval_totals(self.base)) for rec in self.records]
        bad = [x for x in scored if x[1]["missing"] > 0 or x[1]["quality"] < 100.0]
        bad.sort(key=lambda x: (x[1]["quality"], -x[1]["missing"], x[0].session))
        return bad[:max(n, 0)]

    def notes(self, rec: SessionRecord, usual_minutes: int) -> list[str]:
        out = []
        if rec.minutes < usual_minutes:
            out.append(f"short session ({_hm(rec.minutes)})")
        if rec.since_ns is not None:
            out.append(f"partial: from {_local(rec.since_ns, self.tz)} (data starts)")
        if rec.until_ns is not None:
            out.append(f"partial: to {_local(rec.until_ns, self.tz)} (data ends)")
        out.extend(rec.events)
        return out

    def usual_minutes(self) -> int:
        if not self.records:
            return 0
        values, counts = np.unique([r.minutes for r in self.records], return_counts=True)
        return int(values[np.argmax(counts)])

    def to_json(self, worst: int = WORST_SESSIONS) -> dict[str, Any]:
        usual = self.usual_minutes()
        sessions = []
        for rec in self.records:
            sessions.append({
                "session": rec.session,
                "minutes": rec.minutes,
                "partial_from": None if rec.since_ns is None else _iso(rec.since_ns, self.tz),
                "partial_to": None if rec.until_ns is None else _iso(rec.until_ns, self.tz),
                "events": list(rec.events),
                "unknown_bars": dict(rec.unknown_bars),
                "intervals": {iv: _rounded(rec.interval_totals(iv)) for iv in self.intervals},
                "notes": self.notes(rec, usual),
                "longest_gap": None if rec.longest_gap is None else {
                    "symbol": rec.longest_gap[0], **rec.longest_gap[1].to_dict()},
            })
        return {
            "dataset": self.dataset,
            "calendar": self.calendar,
            "base_interval": self.base,
            "derived_intervals": list(self.derived),
            "out": self.out,
            "symbols": self.symbols(),
            "sessions": len(self.records),
            "totals": {iv: _rounded(v) for iv, v in self.by_interval().items()},
            "by_symbol": {s: _rounded(v) for s, v in self.by_symbol().items()},
            "worst_sessions": [rec.session for rec, _ in self.worst(worst)],
            "dropped": dict(self.dropped),
            "per_session": sessions,
            "seconds": round(self.seconds, 3),
        }


def _rounded(d: dict[str, float]) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def run_sessions(dataset: Dataset, calendar, base: str, derived: list[str], *,
                 out: str | None, csv_bars: bool = True, on_bad: str = "raise",
                 start: np.datetime64 | None = None, end: np.datetime64 | None = None,
                 progress: "Progress | None" = None) -> RunReport:
    """Run every session the data touches (within ``start`` .. ``end``)."""
    base_ns = parse_interval(base).ns
    symbols = sorted(s for s, b in dataset.bars.items() if len(b))
    if not symbols:
        dropped = sum(dataset.dropped.values())
        extra = f" ({_plural(dropped, 'row')} dropped: " + ", ".join(
            f"{k}: {v}" for k, v in sorted(dataset.dropped.items())) + ")" if dropped else ""
        raise CliError(f"no bars in {dataset.label}{extra}")
    bars = {s: dataset.bars[s] for s in symbols}
    data_lo = min(int(b.ts[0]) for b in bars.values())
    data_hi = max(int(b.ts[-1]) for b in bars.values()) + base_ns
    windows = calendar.windows(data_lo, data_hi)
    if windows.n_sessions == 0:
        raise CliError(f"no session of {calendar.name} between {_iso(data_lo, calendar.tz)} and "
                       f"{_iso(data_hi, calendar.tz)}")
    labels = windows.sessions
    sid = windows.session_ids
    first_open = {k: int(windows.open_ns[windows.session_slice(k)][0])
                  for k in range(windows.n_sessions)}
    last_close = {k: int(windows.close_ns[windows.session_slice(k)][-1])
                  for k in range(windows.n_sessions)}
    minutes = {k: int((windows.close_ns[windows.session_slice(k)]
                       - windows.open_ns[windows.session_slice(k)]).sum() // 60_000_000_000)
               for k in range(windows.n_sessions)}
    span = {}
    for s, b in bars.items():
        w = windows.locate(np.array([b.ts[0], b.ts[-1]], dtype=np.int64))
        if (w < 0).any():  # readers.check_sessions let it through: a bar outside sessions
            raise CliError(f"{s}: bars outside every session of {calendar.name}")
        span[s] = (int(sid[w[0]]), int(sid[w[1]]))
    first_k = int(sid[windows.locate(np.array([data_lo], np.int64))[0]])
    last_k = int(sid[windows.locate(np.array([data_hi - base_ns], np.int64))[0]])

    chosen = [k for k in range(windows.n_sessions)
              if (start is None or labels[k] >= start) and (end is None or labels[k] <= end)]
    if not chosen:
        raise CliError(f"no session of the data ({labels[0]} .. {labels[-1]}) lies in "
                       f"--start {start} .. --end {end}")
    events_by_session: dict[str, list] = {}
    for ev in dataset.events:
        events_by_session.setdefault(ev.session, []).append(ev)

    coordinator = _RunCoordinator(calendar, base_interval=base, derived_intervals=derived,
                                  on_bad=on_bad)
    records = []
    t0 = time.perf_counter()
    if progress is not None:
        progress.start(len(chosen))
    for i, k in enumerate(chosen):
        label = str(labels[k])
        open_ns, close_ns = first_open[k], last_close[k]
        since = data_lo if (k == first_k and data_lo > open_ns) else None
        until = data_hi if (k == last_k and data_hi < close_ns) else None
        active = [s for s in symbols if span[s][0] <= k <= span[s][1]]
        events = sorted(events_by_session.get(label, []), key=lambda e: e.at_ns(calendar))
        target = None if out is None else Path(out) / label
        coordinator.start(label)
        try:
            cuts, notes = _feed_session(coordinator, bars, active, events, calendar, open_ns,
                                        close_ns, since, dataset)
            unknown = coordinator.session_data.unknown_bars
            for symbol, n in sorted(unknown.items()):
                notes.append(f"{_plural(n, 'bar')} of {symbol} not stored (not in the "
                             "session then)")
            summary = stop_session(coordinator, since_ns=cuts, until_ns=until,
                                   export_to=target, csv_bars=csv_bars)
        except BaseException:
            if coordinator.session_data.is_active:
                coordinator.session_data.end_session()
            raise
        records.append(SessionRecord(label, minutes[k], summary, since, until, notes, unknown,
                                     coordinator.longest_gap))
        if progress is not None:
            progress.update(i + 1, label)
    if progress is not None:
        progress.finish()
    report = RunReport(dataset.label, calendar.name, calendar.tz, base, list(derived), out,
                       records, dict(dataset.dropped))
    report.seconds = time.perf_counter() - t0
    return report


def _feed_session(coordinator, bars, active, events, calendar, open_ns, close_ns, since,
                  dataset) -> tuple[dict[str, int], list[str]]:
    """Load (and stream, around add/remove events) a session's bars; returns the symbols to
    score from a later time than the open, and notes for the summary."""
    notes: list[str] = []

    def part(symbol, lo, hi):
        b = bars[symbol]
        a, z = np.searchsorted(b.ts, [lo, hi])
        return int(a), b[int(a):int(z)]

    def push(method, symbol, lo, hi):
        offset, chunk = part(symbol, lo, hi)
        if not len(chunk):
            return 0
        try:
            return method(symbol, chunk)
        except BadBarError as exc:
            if dataset.read is not None and exc.row >= 0:
                raise dataset.read.error(symbol, offset + exc.row, str(exc)) from None
            raise

    added = {e.symbol: e for e in events if e.action == "add"}
    initial = [s for s in active if s not in added]
    cuts: dict[str, int] = {}
    if since is not None:
        cuts.update({s: since for s in active})
    if not events:
        for symbol in active:
            coordinator.add_symbol(symbol)
            push(coordinator.load, symbol, open_ns, close_ns)
            coordinator.mark_loaded(symbol)
        return cuts, notes
    # A session with symbols added or removed: load up to the first event, then stream the
    # bars between events in time order, applying each event at its instant.
    times = [open_ns] + [e.at_ns(calendar) for e in events] + [close_ns]
    for symbol in initial:
        coordinator.add_symbol(symbol)
        push(coordinator.load, symbol, times[0], times[1])
        coordinator.mark_loaded(symbol)
    for symbol in added:  # bars before a symbol is added arrive for an unknown symbol
        if symbol in active:
            push(coordinator.stream_bars, symbol, times[0], times[1])
    for j, event in enumerate(events):
        at = times[j + 1]
        when = _local(at, calendar.tz, with_date=False)
        if event.action == "add":
            coordinator.add_symbol(event.symbol)
            coordinator.mark_loaded(event.symbol)
            cuts[event.symbol] = max(at, cuts.get(event.symbol, at))
            notes.append(f"+{event.symbol} added at {when}")
        elif event.action == "remove":
            coordinator.remove_symbol(event.symbol)
            notes.append(f"-{event.symbol} removed at {when}")
        lo, hi = times[j + 1], times[j + 2]
        for symbol in active:
            push(coordinator.stream_bars, symbol, lo, hi)
    return cuts, notes


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _local(ns: int, tz, with_date: bool = True) -> str:
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    t = (epoch + _dt.timedelta(microseconds=ns // 1000)).astimezone(tz)
    text = t.strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M")
    return f"{text} {t.tzname()}"


def _iso(ns: int, tz) -> str:
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    return (epoch + _dt.timedelta(microseconds=ns // 1000)).astimezone(tz).isoformat()


def _gap_text(longest, with_symbol: bool) -> str:
    """``BOLT 13:42-14:19 (37)``: the longest gap, local times, its bar count."""
    if longest is None:
        return "-"
    symbol, gap = longest
    text = (f"{gap.start_time.strftime('%H:%M')}-{gap.end_time.strftime('%H:%M')} "
            f"({gap.bar_count})")
    return f"{symbol} {text}" if with_symbol else text


def _hm(minutes: int) -> str:
    return f"{minutes // 60}h{minutes % 60:02d}"


def _n(value) -> str:
    return f"{int(value):,}"


def _plural(n: int, noun: str) -> str:
    return f"{_n(n)} {noun}" if n == 1 else f"{_n(n)} {noun}s"


def _pct(value: float) -> str:
    return f"{value:.2f}%"


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]

    def line(cells):
        out = []
        for i, cell in enumerate(cells):
            is_last = i == len(cells) - 1
            if i in right:
                out.append(cell.rjust(widths[i]))
            else:
                out.append(cell if is_last else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    return [line(headers)] + [line(r) for r in rows]


def render(report: RunReport, worst: int = WORST_SESSIONS) -> str:
    """The summary as text."""
    lines = []
    symbols = report.symbols()
    first = report.records[0].session if report.records else "-"
    last = report.records[-1].session if report.records else "-"
    lines.append(f"{PROG} run: {report.dataset}")
    lines.append(f"calendar {report.calendar}, base {report.base}, derived "
                 f"{', '.join(report.derived) or 'none'}; sessions {first} .. {last}")
    lines.append("")
    totals = report.by_interval()
    base = totals[report.base]
    lines += _table(
        ["symbols", "sessions", "bars", "gaps", "missing", "quality"],
        [[_n(len(symbols)), _n(len(report.records)), _n(base["bars"]), _n(base["gaps"]),
          _n(base["missing"]), _pct(base["quality"])]],
        {0, 1, 2, 3, 4, 5})
    lines.append("")
    lines += _table(
        ["interval", "bars", "expected", "gaps", "missing", "quality"],
        [[iv, _n(t["bars"]), _n(t["expected"]), _n(t["gaps"]), _n(t["missing"]),
          _pct(t["quality"])] for iv, t in totals.items()],
        {1, 2, 3, 4, 5})
    by_symbol = report.by_symbol()
    if len(by_symbol) > 1:
        ranked = sorted(by_symbol.items(), key=lambda x: (x[1]["quality"], x[0]))
        shown = ranked[:SYMBOL_ROWS]
        lines.append("")
        title = f"symbols ({report.base})" if len(ranked) <= SYMBOL_ROWS else \
            f"worst {len(shown)} of {len(ranked)} symbols ({report.base})"
        lines.append(title)
        lines += _table(
            ["symbol", "sessions", "bars", "gaps", "missing", "quality"],
            [[s, _n(t["sessions"]), _n(t["bars"]), _n(t["gaps"]), _n(t["missing"]),
              _pct(t["quality"])] for s, t in sorted(shown, key=lambda x: x[0])],
            {1, 2, 3, 4, 5})
    usual = report.usual_minutes()
    worst_rows = report.worst(worst)
    if worst > 0:
        lines.append("")
    if worst <= 0:
        pass
    elif worst_rows:
        lines.append(f"worst sessions ({report.base})")
        lines += _table(
            ["session", "symbols", "bars", "gaps", "missing", "quality", "longest gap",
             "notes"],
            [[rec.session, _n(t["symbols"]), _n(t["bars"]), _n(t["gaps"]), _n(t["missing"]),
              _pct(t["quality"]), _gap_text(rec.longest_gap, len(symbols) > 1),
              "; ".join(report.notes(rec, usual))]
             for rec, t in worst_rows],
            {1, 2, 3, 4, 5})
    else:
        lines.append(f"worst sessions ({report.base}): none, no bar is missing")
    worst_set = {rec.session for rec, _ in worst_rows}
    others = [(rec, report.notes(rec, usual)) for rec in report.records
              if rec.session not in worst_set]
    others = [(rec, n) for rec, n in others if n]
    if others:
        lines.append("")
        lines.append("other sessions of note")
        for rec, notes in others:
            lines.append(f"{rec.session}  {'; '.join(notes)}")
    if report.dropped:
        lines.append("")
        total = sum(report.dropped.values())
        reasons = ", ".join(f"{k}: {_n(v)}" for k, v in sorted(report.dropped.items()))
        lines.append(f"dropped on read (--on-bad drop): {_plural(total, 'row')} ({reasons})")
    lines.append("")
    if report.out is not None:
        lines.append(f"wrote {_plural(len(report.records), 'session folder')} to {report.out} "
                     f"in {report.seconds:.2f} s")
    return "\n".join(lines)


class Progress:
    """A plain progress bar on stderr, drawn only on a terminal and only once a run has taken
    half a second."""

    def __init__(self, stream=None, enabled: bool | None = None, delay: float = 0.5):
        self.stream = stream or sys.stderr
        self.enabled = _isatty(self.stream) if enabled is None else enabled
        self.delay = delay
        self.total = 0
        self._t0 = 0.0
        self._last = 0.0
        self._drawn = False

    def start(self, total: int) -> None:
        self.total = total
        self._t0 = time.monotonic()

    def update(self, done: int, label: str = "") -> None:
        if not self.enabled or self.total <= 1:
            return
        now = time.monotonic()
        if now - self._t0 < self.delay or (now - self._last < 0.1 and done < self.total):
            return
        self._last = now
        width = 30
        filled = int(width * done / self.total)
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(f"\r[{bar}] {done}/{self.total} sessions {label}")
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        if self._drawn:
            self.stream.write("\r" + " " * 70 + "\r")
            self.stream.flush()
            self._drawn = False


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def cmd_run(args) -> int:
    base, derived = parse_intervals(args.base, args.derived)
    start = _parse_date(args.start, "--start")
    end = _parse_date(args.end, "--end")
    if start is not None and end is not None and end < start:
        raise CliError(f"--end {end} is before --start {start}")
    if args.data is None:
        calendar = parse_calendar(args.calendar) if args.calendar else sample.sample_calendar()
        if base != "1m":
            raise CliError("the embedded sample holds 1m bars; use --base 1m (or give DATA)")
    else:
        if not args.calendar:
            raise CliError("--calendar is required with DATA (e.g. XNYS, CME_GLOBEX, 24/7, "
                           "weekly:Europe/Berlin,09:00,17:30)")
        calendar = parse_calendar(args.calendar)
    dataset = load_dataset(args, calendar, base)
    out = args.out
    before = set()
    if out is not None and Path(out).exists():
        if not Path(out).is_dir():
            raise CliError(f"--out {out} exists and is not a folder")
        before = {p.resolve() for p in iter_session_folders(out)}
    progress = Progress(enabled=None if not args.quiet else False)
    try:
        report = run_sessions(dataset, calendar, base, derived, out=out,
                              csv_bars=not args.no_csv, on_bad=args.on_bad, start=start,
                              end=end, progress=progress)
    finally:
        progress.finish()
    if args.json_summary:
        write_json(args.json_summary, report.to_json(args.worst))
    if not args.quiet:
        print(render(report, args.worst))
        written = {(Path(out) / r.session).resolve() for r in report.records}
        stale = sorted(before - written)
        if stale:
            print(f"note: {out} also holds {len(stale)} session folders from an earlier run "
                  f"(e.g. {stale[0].name}); 'sessiondata validate' checks them too",
                  file=sys.stderr)
    return EXIT_OK


def cmd_validate(args) -> int:
    root = Path(args.dir)
    if not root.is_dir():
        raise CliError(f"{root}: no such folder")
    folders = list(iter_session_folders(root))
    if not folders:
        raise CliError(f"{root}: no session folder (no session.json) under it")
    bad = 0
    count = 0
    for folder in folders:
        problems = validate_export(folder)
        count += 1
        name = folder.relative_to(root).as_posix() if folder != root else "."
        if problems:
            bad += 1
            print(f"FAIL {name}: {len(problems)} problem{'s' if len(problems) > 1 else ''}")
            for p in problems:
                print(f"  {p}")
        elif not args.quiet:
            print(f"OK   {name}")
    if bad:
        print(f"{bad} of {count} session folders have problems", file=sys.stderr)
        return EXIT_PROBLEMS
    if not args.quiet:
        print(f"all {count} session folders are sound")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
