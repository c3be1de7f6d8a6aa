"""Gate on data quality: rules evaluated on every cell of an export (or a run), findings,
exit codes and the formats CI reads (a table, JSON Lines, JUnit XML, GitHub annotations).

A *rule* is a metric, a bound (``min`` or ``max``), a *scope* and a *level*::

    completeness >= 99.5 on every cell (symbol x session x interval)      error
    outage <= 0 on every symbol (its sessions summed)                       warn

and is evaluated on every cell of its scope, so one failing cell among ten thousand fails the
run.  Scopes: ``cell`` (symbol x session x interval, the default), ``symbol`` (a symbol over
all its sessions), ``session`` (a session over all its symbols), ``totals`` (everything), each
per interval.  A rule applies to one interval (the base interval by default) or to every
interval (``*``).

Metrics (``METRICS``; the direction is the one that makes sense, ``min`` or ``max``):

==================  =====  ============================================================
completeness        min    ``100 * coverage / expected`` (the session document's score)
data_quality        min    ``100 * (expected - lost) / expected``: only slots lost to
                           outage, late_start or early_end count against it
lost                max    slots lost to outage, late_start and early_end
outage              max    slots missing in gaps of kind outage (also late_start,
late_start, ...            early_end, no_trade, halt: any gap kind)
gaps, missing       max    gaps and missing slots (any kind); ``gaps_<kind>`` per kind
gaps_over_N         max    gaps longer than N bars (``gaps_over_30``)
anomalies_KIND      max    anomalies of a kind (see below)
==================  =====  ============================================================

Anomalies.  The anomaly detectors (issue 22) write an ``anomalies`` section beside ``gaps``
in the base interval of each symbol's document (``count``, ``kinds``: anomalies per kind,
only the kinds present, and ``ranges``).  The cell table reads it into ``anomalies_<kind>``
for every kind (0 where none) and ``anomalies_all`` (:func:`_anomaly_counts`); from a
:class:`RunResult`, from its ``anomalies`` columns.  Derived intervals carry no section: a
rule on an anomaly count looks at base-interval cells (the others read 0).  A rule on an
anomaly kind that the export does not carry (a run with ``--anomalies none``, an older
export) is a usage error (exit 2) naming the rule, never a silent pass.

The export is read through its documented layout only (``OUT/manifest.json``,
``OUT/sessions/*.json``, ``OUT/gaps/``), so this module does not depend on how the engine
builds it; a :class:`~sessiondata.results.RunResult` is read through its public columns.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np

from .export import load_manifest

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

    from .results import RunResult

SCOPES = ("cell", "symbol", "session", "totals")
LEVELS = ("error", "warn")
ALL = "*"   # a rule on every interval; a finding's symbol or session over all of them
GAP_KINDS = ("no_trade", "outage", "late_start", "early_end", "halt")
LOST_KINDS = ("outage", "late_start", "early_end")

# Exit codes (pytest's and the linters'): 0 no error rule failed, 1 one did, 2 bad input.
EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class RuleError(ValueError):
    """A rule that cannot be read or evaluated (exit 2), naming the rule and where it was."""


# -- metrics -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """How a metric is computed from the summed columns of a group of cells."""

    name: str
    direction: str      # "min": the value must not fall below; "max": not rise above
    percent: bool       # a percentage (formatted with two decimals) or a count
    needs: tuple[str, ...]
    help: str


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("completeness", "min", True, ("expected", "coverage"),
           "100 * coverage / expected, the session document's quality score"),
    Metric("data_quality", "min", True, ("expected", "lost"),
           "100 * (expected - lost) / expected; only outage, late_start, early_end count"),
    Metric("lost", "max", False, ("lost",),
           "slots lost to outage, late_start and early_end"),
    Metric("gaps", "max", False, ("gaps",), "gaps of any kind"),
    Metric("missing", "max", False, ("missing",), "missing slots of any kind"),
)}
# Families with a parameter: a gap kind's missing slots (``outage``), gaps longer than N bars
# (``gaps_over_N``), and an anomaly kind's count (``anomalies_KIND``): one line each here.
_FAMILIES = (
    (re.compile(r"^(?P<kind>%s)$" % "|".join(GAP_KINDS)), "missing_{kind}",
     "slots missing in gaps of kind {kind}"),
    (re.compile(r"^gaps_(?P<kind>%s)$" % "|".join(GAP_KINDS)), "gaps_{kind}",
     "gaps of kind {kind}"),
    (re.compile(r"^gaps_over_(?P<n>\d+)$"), "gaps_over_{n}", "gaps longer than {n} bars"),
    (re.compile(r"^anomalies(?:_(?P<kind>[a-z_]+))?$"), "anomalies_{kind}",
     "anomalies of kind {kind}"),
)


def metric(name: str) -> Metric:
    """The :class:`Metric` of a name (``completeness``, ``outage``, ``gaps_over_30``...)."""
    name = name.strip().lower()
    if name in METRICS:
        return METRICS[name]
    for pattern, column, text in _FAMILIES:
        m = pattern.match(name)
        if m:
            groups = {k: (v if v is not None else "all") for k, v in m.groupdict().items()}
            col = column.format(**groups)
            return Metric(name, "max", False, (col,), text.format(**groups))
    known = ", ".join(list(METRICS) + list(GAP_KINDS) + ["gaps_<kind>", "gaps_over_N",
                                                          "anomalies_<kind>"])
    raise RuleError(f"unknown metric {name!r} (known: {known})")


# -- rules -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One rule: ``metric`` must be ``>= threshold`` (``bound="min"``) or ``<= threshold``
    (``"max"``) on every cell of ``scope``, for ``interval`` (None: the base interval;
    ``"*"``: every interval).  A failing ``error`` rule fails the check; ``warn`` reports."""

    metric: str
    bound: str
    threshold: float
    scope: str = "cell"
    interval: str | None = None
    level: str = "error"
    source: str = ""   # where the rule was given (for error messages and the reports)

    def __post_init__(self) -> None:
        where = f" ({self.source})" if self.source else ""
        m = metric(self.metric)
        if self.bound not in ("min", "max"):
            raise RuleError(f"rule {self.metric}{where}: bound must be min or max, got "
                            f"{self.bound!r}")
        if m.direction != self.bound:
            word = "under" if m.direction == "min" else "over"
            raise RuleError(f"rule {self.metric}{where}: {self.metric} takes a {m.direction}imum "
                            f"(fail-{word}), not a {self.bound}imum")
        if self.scope not in SCOPES:
            raise RuleError(f"rule {self.metric}{where}: scope must be one of {SCOPES}, got "
                            f"{self.scope!r}")
        if self.level not in LEVELS:
            raise RuleError(f"rule {self.metric}{where}: level must be error or warn, got "
                            f"{self.level!r}")
        if not isinstance(self.threshold, (int, float)) or not math.isfinite(self.threshold):
            raise RuleError(f"rule {self.metric}{where}: the threshold must be a finite "
                            f"number, got {self.threshold!r}")

    @property
    def name(self) -> str:
        """``completeness >= 99.5`` (with ``@scope`` and ``:interval`` when not the default)."""
        op = ">=" if self.bound == "min" else "<="
        extra = "" if self.scope == "cell" else f"@{self.scope}"
        extra += "" if self.interval is None else f":{self.interval}"
        return f"{self.metric}{extra} {op} {_num(self.threshold)}"

    @property
    def key(self) -> tuple[str, str, str | None, str]:
        return (self.metric, self.scope, self.interval, self.level)


_SPEC = re.compile(r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*)\s*(?:@\s*(?P<scope>[a-z]+)\s*)?"
                   r"(?::\s*(?P<interval>[0-9A-Za-z*]+)\s*)?=\s*(?P<value>[^,=\s]+)\s*$")

# The rule options: the bound and the level of their rules.  ``fail`` and ``warn`` take the
# bound from the metric (completeness a minimum, outage a maximum).
OPTIONS: dict[str, tuple[str | None, str]] = {
    "fail-under": ("min", "error"), "fail-over": ("max", "error"),
    "warn-under": ("min", "warn"), "warn-over": ("max", "warn"),
    "fail": (None, "error"), "warn": (None, "warn")}


def parse_rules(text: str, option: str = "fail-under", source: str = "") -> list[Rule]:
    """Rules from the command line's syntax: a comma-separated list of
    ``METRIC[@SCOPE][:INTERVAL]=VALUE``, e.g. ``completeness=99.5,data_quality@symbol=99.9``
    or ``gaps_over_30:5m=0``; ``option`` (``fail-under``, ``fail-over``, ``warn-under``,
    ``warn-over``; ``fail`` and ``warn`` take the metric's own bound) gives the bound and the
    level."""
    if option not in OPTIONS:
        raise RuleError(f"unknown rule option {option!r} (one of {', '.join(OPTIONS)})")
    bound, level = OPTIONS[option]
    where = source or f"--{option}"
    rules = []
    for part in [p for p in text.split(",") if p.strip()] or [""]:
        m = _SPEC.match(part)
        if not m:
            raise RuleError(f"{where}: cannot read {part.strip()!r}: expected "
                            "METRIC[@SCOPE][:INTERVAL]=VALUE, e.g. completeness=99.5 or "
                            "outage@symbol:1m=0")
        try:
            value = float(m["value"].rstrip("%"))
        except ValueError:
            raise RuleError(f"{where}: {part.strip()!r}: {m['value']!r} is not a number"
                            ) from None
        name = m["metric"].lower()
        rules.append(Rule(name, bound or metric(name).direction, value, m["scope"] or "cell",
                          m["interval"], level, where))
    return rules


def rules_from_config(config: dict[str, Any], source: str) -> list[Rule]:
    """Rules from a ``[tool.sessiondata.check]`` table (or a rules file's top level).

    Keys ``fail-under``, ``fail-over``, ``warn-under``, ``warn-over``, ``fail``, ``warn``
    take the command
    line's syntax as a string, or a table ``{completeness = 99.5, "outage@symbol" = 0}``;
    ``rules`` is an array of tables with ``metric``, ``min`` or ``max``, and optional
    ``scope``, ``interval``, ``level``.
    """
    rules: list[Rule] = []
    for key, value in config.items():
        norm = key.replace("_", "-")
        if norm in OPTIONS:
            if isinstance(value, str):
                rules += parse_rules(value, norm, f"{source}: {key}")
            elif isinstance(value, dict):
                text = ",".join(f"{k}={v}" for k, v in value.items())
                rules += parse_rules(text, norm, f"{source}: {key}")
            else:
                raise RuleError(f"{source}: {key} must be a string or a table, got "
                                f"{type(value).__name__}")
        elif key == "rules":
            if not isinstance(value, list):
                raise RuleError(f"{source}: rules must be an array of tables "
                                "([[tool.sessiondata.check.rules]])")
            for i, entry in enumerate(value):
                rules.append(_rule_of_table(entry, f"{source}: rules[{i}]"))
        else:
            raise RuleError(f"{source}: unknown key {key!r} (fail-under, fail-over, "
                            "warn-under, warn-over, fail, warn, rules)")
    return rules


def _rule_of_table(entry: Any, where: str) -> Rule:
    if not isinstance(entry, dict):
        raise RuleError(f"{where}: a rule is a table, got {type(entry).__name__}")
    unknown = set(entry) - {"metric", "min", "max", "scope", "interval", "level"}
    if unknown:
        raise RuleError(f"{where}: unknown keys {sorted(unknown)}")
    if "metric" not in entry:
        raise RuleError(f"{where}: no metric")
    if ("min" in entry) == ("max" in entry):
        raise RuleError(f"{where}: give exactly one of min and max")
    bound = "min" if "min" in entry else "max"
    value = entry[bound]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RuleError(f"{where}: {bound} must be a number, got {value!r}")
    return Rule(str(entry["metric"]).lower(), bound, float(value),
                str(entry.get("scope", "cell")), entry.get("interval"),
                str(entry.get("level", "error")), where)


def _toml() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
        return tomllib
    try:  # pragma: no cover - Python 3.10
        import tomli  # type: ignore[import-not-found, unused-ignore]
    except ImportError:  # pragma: no cover
        raise ImportError("reading TOML rules on Python 3.10 needs tomli: pip install tomli"
                          ) from None
    return tomli


def read_rules_file(path: str | os.PathLike) -> list[Rule]:
    """Rules from a TOML file: a ``pyproject.toml`` (its ``[tool.sessiondata.check]``) or a
    file whose top level (or ``[tool.sessiondata.check]``) holds the rules."""
    path = Path(path)
    try:
        doc = _toml().loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuleError(f"{path}: cannot read the rules: {exc.strerror or exc}") from None
    except ValueError as exc:   # tomllib.TOMLDecodeError names the line and column
        raise RuleError(f"{path}: not valid TOML: {exc}") from None
    section = doc.get("tool", {}).get("sessiondata", {}).get("check")
    if section is None:
        if path.name == "pyproject.toml":
            return []
        section = doc
    if not isinstance(section, dict):
        raise RuleError(f"{path}: [tool.sessiondata.check] must be a table")
    return rules_from_config(section, str(path))


def find_pyproject(start: str | os.PathLike = ".") -> Path | None:
    """The nearest ``pyproject.toml`` at or above ``start`` (as pytest and ruff find theirs)."""
    here = Path(start).resolve()
    for folder in [here, *here.parents]:
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def merge_rules(base: Sequence[Rule], override: Sequence[Rule]) -> list[Rule]:
    """``base`` with ``override`` added; a rule of ``override`` on the same metric, scope,
    interval and level replaces the one of ``base``."""
    keys = {r.key for r in override}
    return [r for r in base if r.key not in keys] + list(override)


# -- cells -------------------------------------------------------------------------------------


@dataclass
class Cells:
    """Symbol x session x interval cells as columns: the figures every rule reads.

    ``symbol``, ``session``, ``interval`` are codes into ``symbols``, ``sessions``,
    ``intervals``; ``columns`` holds int64/float64 arrays (``expected``, ``coverage``,
    ``bars``, ``gaps``, ``missing``, ``lost``, ``missing_<kind>``, ``gaps_<kind>``,
    ``anomalies_<kind>``); ``gap_cell`` and ``gap_bars`` are every gap's cell and length (for
    ``gaps_over_N``), read when first needed.
    """

    symbols: list[str]
    sessions: list[str]
    intervals: list[str]
    base: str
    symbol: np.ndarray
    session: np.ndarray
    interval: np.ndarray
    columns: dict[str, np.ndarray]
    source: str = ""
    gap_reader: Any = None
    kind_reader: Any = None   # makes the columns per gap kind when first asked for
    _gap_lengths: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.symbol.shape[0])

    def column(self, name: str, rule: Rule | None = None) -> np.ndarray:
        """A column by name (``gaps_over_N`` counted from the gaps)."""
        if name in self.columns:
            return self.columns[name]
        if self.kind_reader is not None and name.startswith(("missing_", "gaps_")) \
                and not name.startswith("gaps_over_"):
            reader, self.kind_reader = self.kind_reader, None
            self.columns.update(reader())
            if name in self.columns:
                return self.columns[name]
        m = re.match(r"^gaps_over_(\d+)$", name)
        if m:
            cell, length = self.gap_lengths()
            n = int(m.group(1))
            out = np.bincount(cell[length > n], minlength=len(self)).astype(np.int64)
            self.columns[name] = out
            return out
        what = f"rule {rule.name} ({rule.source})" if rule and rule.source else \
            f"rule {rule.name}" if rule else name
        if name.startswith("anomalies"):
            raise RuleError(f"{what}: {self.source} carries no anomaly counts (the anomaly "
                            "detectors are not in this export)")
        if name in ("lost", "data_quality") or name.startswith(("missing_", "gaps_")):
            raise RuleError(f"{what}: {self.source} has no gap kinds (lost slots and counts "
                            "per kind come from the gap classification)")
        raise RuleError(f"{what}: {self.source} has no column {name!r}")

    def gap_lengths(self) -> tuple[np.ndarray, np.ndarray]:
        if self._gap_lengths is None:
            self._gap_lengths = self.gap_reader() if self.gap_reader else \
                (np.empty(0, np.int64), np.empty(0, np.int64))
        return self._gap_lengths

    def cell_code(self, interval: np.ndarray, symbol: np.ndarray,
                  session: np.ndarray) -> np.ndarray:
        """The row of each (interval, symbol, session) given as codes (-1 where none)."""
        n_s, n_k = len(self.symbols), len(self.sessions)
        table = np.full(len(self.intervals) * n_s * n_k, -1, np.int64)
        table[(self.interval * n_s + self.symbol) * n_k + self.session] = np.arange(len(self))
        return table[(interval * n_s + symbol) * n_k + session]


def read_cells(out: str | os.PathLike, only: Iterable[str] | None = None) -> Cells:
    """The cells of an export, read from its manifest and session documents (the gaps'
    lengths from ``OUT/gaps`` when a ``gaps_over_N`` rule asks); with ``only``, the cells of
    those sessions alone."""
    import orjson

    root = Path(out)
    manifest = load_manifest(root)
    base = str(manifest.get("base_interval", ""))
    intervals = [base] + [str(d) for d in manifest.get("derived_intervals", [])]
    symbols = [str(s) for s in manifest.get("symbols", [])]
    sessions = [str(s) for s in manifest.get("sessions", [])]
    iv_code = {n: i for i, n in enumerate(intervals)}
    sym_code = {n: i for i, n in enumerate(symbols)}
    table: list[tuple[Any, ...]] = []   # one tuple per cell: codes and figures
    kinds: list[dict[str, Any]] = []
    anomalies: dict[str, list[int]] = {}
    classified = True
    wanted = None if only is None else set(only)
    for k, label in enumerate(sessions):
        if wanted is not None and label not in wanted:
            continue
        path = root / "sessions" / f"{label}.json"
        try:
            doc = orjson.loads(path.read_bytes())
        except OSError as exc:
            raise FileNotFoundError(f"{path}: cannot read: {exc.strerror}") from None
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON: {exc}") from None
        for symbol, entry in doc.get("symbols", {}).items():
            s = sym_code.get(symbol)
            if s is None:
                s = sym_code[symbol] = len(symbols)
                symbols.append(symbol)
            for name, iv in entry.get("intervals", {}).items():
                q = iv.get("quality")
                if q is None:   # not scored (a live session's interval): no figures
                    continue
                i = iv_code.get(name)
                if i is None:
                    i = iv_code[name] = len(intervals)
                    intervals.append(name)
                try:
                    g = iv["gaps"]
                    lost = q.get("lost")
                    table.append((i, s, k, q["expected"], q["coverage"], iv["bars"],
                                  g["gap_count"], g["missing_bars"],
                                  -1 if lost is None else lost))
                except (KeyError, TypeError) as exc:
                    raise ValueError(f"{path}: {symbol} {name}: malformed figures ({exc!r})"
                                     ) from None
                if lost is None:
                    classified = False
                elif classified:
                    kinds.append(g.get("kinds") or {})
                if "anomalies" in iv:
                    try:
                        _anomaly_counts(iv["anomalies"], anomalies, len(table) - 1)
                    except ValueError as exc:
                        raise ValueError(f"{path}: {symbol} {name}: {exc}") from None
    try:
        figures = np.array(table, np.float64).reshape(len(table), 9)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{root}: malformed figures in a session document ({exc})") from None
    n_cells = len(table)
    columns: dict[str, np.ndarray] = {
        name: figures[:, j] if name == "coverage" else figures[:, j].astype(np.int64)
        for j, name in enumerate(("expected", "coverage", "bars", "gaps", "missing", "lost"),
                                 start=3)}
    if not classified:
        del columns["lost"]
    for kind, values in anomalies.items():
        columns[f"anomalies_{kind}"] = np.array(values + [0] * (n_cells - len(values)),
                                                np.int64)
    cells = Cells(symbols, sessions, intervals, base, figures[:, 1].astype(np.int64),
                  figures[:, 2].astype(np.int64), figures[:, 0].astype(np.int64), columns,
                  source=str(root))
    if classified:
        cells.kind_reader = lambda: _kind_columns(kinds, root)
    cells.gap_reader = lambda: _export_gap_lengths(root, manifest, cells)
    return cells


def _kind_columns(kinds: list[dict[str, Any]], root: Path) -> dict[str, np.ndarray]:
    """``missing_<kind>`` and ``gaps_<kind>`` of each cell from the documents' counts per
    kind (every kind a column, even when no gap has it); made when a rule asks."""
    names = set(GAP_KINDS).union(*kinds) if kinds else set(GAP_KINDS)
    none = {"missing_bars": 0, "gap_count": 0}
    out = {}
    try:
        for kind in sorted(names):
            out[f"missing_{kind}"] = np.array(
                [c.get(kind, none)["missing_bars"] for c in kinds], np.int64)
            out[f"gaps_{kind}"] = np.array(
                [c.get(kind, none)["gap_count"] for c in kinds], np.int64)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{root}: malformed gap kinds in a session document ({exc!r})"
                         ) from None
    return out


def _anomaly_counts(section: Any, into: dict[str, list[int]], n: int) -> None:
    """Counts per anomaly kind of a document's ``anomalies`` section (``count``, and
    ``kinds``: the count of each kind present, as ``documents`` writes it), into columns
    ``anomalies_<kind>`` (every kind, 0 where absent) and ``anomalies_all``; cell ``n`` is
    the current one.  A malformed section is a ``ValueError`` (the caller names the file)."""
    from .results import ANOMALY_KINDS

    if not isinstance(section, dict) or not isinstance(section.get("kinds"), dict) \
            or not isinstance(section.get("count"), int):
        raise ValueError(f"malformed anomalies section {str(section)[:120]}")
    counts: dict[str, int] = {k: 0 for k in ANOMALY_KINDS}
    for kind, value in section["kinds"].items():
        if kind not in counts or not isinstance(value, int):
            raise ValueError(f"anomalies section: unknown kind or count {kind!r}: {value!r}")
        counts[kind] = value
    counts["all"] = section["count"]
    for kind, c in counts.items():
        col = into.setdefault(kind, [])
        col.extend([0] * (n - len(col)))
        col.append(c)


def _export_gap_lengths(root: Path, manifest: dict[str, Any],
                        cells: Cells) -> tuple[np.ndarray, np.ndarray]:
    """Every gap's cell and length, from the gap dataset (``OUT/gaps/interval=<iv>/``)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    fmt = manifest.get("format", "parquet")
    cell_parts, length_parts = [], []
    for i, name in enumerate(cells.intervals):
        files = sorted((root / "gaps" / f"interval={name}").glob(f"*.{fmt}"))
        for path in files:
            try:
                if fmt == "parquet":
                    t = pa.parquet.read_table(path, columns=["symbol", "session", "bar_count"])
                else:
                    t = pa.csv.read_csv(path, convert_options=pa.csv.ConvertOptions(
                        include_columns=["symbol", "session", "bar_count"],
                        column_types={"symbol": pa.string(), "session": pa.date32(),
                                      "bar_count": pa.int64()}))
            except (OSError, pa.ArrowInvalid, KeyError) as exc:
                raise ValueError(f"{path}: cannot read the gaps: {exc}") from None
            sym = pc.index_in(t.column("symbol").cast(pa.string()),
                              value_set=pa.array(cells.symbols, pa.string()))
            ses = pc.index_in(t.column("session").cast(pa.string()),
                              value_set=pa.array(cells.sessions, pa.string()))
            if sym.null_count or ses.null_count:
                raise ValueError(f"{path}: gaps of a symbol or session the session documents "
                                 "do not list")
            code = cells.cell_code(np.full(t.num_rows, i, np.int64),
                                   sym.to_numpy(zero_copy_only=False).astype(np.int64),
                                   ses.to_numpy(zero_copy_only=False).astype(np.int64))
            keep = code >= 0   # gaps of a cell with no figures (unscored) are not counted
            cell_parts.append(code[keep])
            length_parts.append(t.column("bar_count").to_numpy()[keep].astype(np.int64))
    if not cell_parts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(cell_parts), np.concatenate(length_parts)


def result_cells(run: "RunResult") -> Cells:
    """The cells of a :class:`~sessiondata.results.RunResult`, read through its public
    columns (``intervals``: per interval ``expected``, ``covered``, ``bars``, the gaps and,
    when classified, ``gap_kind`` and ``lost``; ``member``)."""
    from .classify import KINDS

    n_s, n_k = len(run.symbols), len(run.sessions)
    names = list(run.intervals)
    parts: dict[str, list[np.ndarray]] = {}
    gap_cell, gap_len = [], []
    classified = all(t.gap_kind is not None for t in run.intervals.values())
    offset = 0
    for i, name in enumerate(names):
        t = run.intervals[name]
        mask = run.member & (t.has & t.scored)[:, None]          # [S, K]
        s_idx, k_idx = np.nonzero(mask)
        index = np.full((n_s, n_k), -1, np.int64)
        index[s_idx, k_idx] = np.arange(len(s_idx)) + offset
        gcell = index[t.gap_symbol, t.gap_session]
        cols = {"interval": np.full(len(s_idx), i, np.int64), "symbol": s_idx, "session": k_idx,
                "expected": t.expected[mask], "coverage": t.covered[mask],
                "bars": t.bars[mask]}
        keys = (gcell - offset)[gcell >= 0]
        counts = t.gap_count[gcell >= 0]
        cols["gaps"] = np.bincount(keys, minlength=len(s_idx))
        cols["missing"] = np.bincount(keys, weights=counts, minlength=len(s_idx))
        if classified:
            lost = t.lost if t.lost is not None else np.zeros((n_s, n_k), np.int64)
            cols["lost"] = lost[mask]
            kind = np.asarray(t.gap_kind)[gcell >= 0]
            for code, kname in enumerate(KINDS):
                sel = kind == code
                cols[f"missing_{kname}"] = np.bincount(keys[sel], weights=counts[sel],
                                                       minlength=len(s_idx))
                cols[f"gaps_{kname}"] = np.bincount(keys[sel], minlength=len(s_idx))
        if run.anomalies is not None:  # counted on the base interval's cells (as documents)
            from .results import ANOMALY_KINDS

            a_cells = run.anomalies.cells((n_s, n_k))
            here = name == run.anomalies.interval
            for kname in ("all",) + ANOMALY_KINDS:
                src = a_cells["anomalies" if kname == "all" else f"anomalies_{kname}"]
                cols[f"anomalies_{kname}"] = (src[mask] if here else
                                              np.zeros(len(s_idx), np.int64))
        for key, value in cols.items():
            parts.setdefault(key, []).append(np.asarray(value))
        gap_cell.append(gcell[gcell >= 0])
        gap_len.append(counts)
        offset += len(s_idx)
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    columns = {k: (v.astype(np.float64) if k == "coverage" else v.astype(np.int64))
               for k, v in cat.items() if k not in ("interval", "symbol", "session")}
    g = (np.concatenate(gap_cell).astype(np.int64), np.concatenate(gap_len).astype(np.int64))
    return Cells(list(run.symbols), [str(s) for s in run.sessions], names, run.base,
                 cat["symbol"].astype(np.int64), cat["session"].astype(np.int64),
                 cat["interval"].astype(np.int64), columns, source="the run",
                 gap_reader=lambda: g)


# -- evaluation --------------------------------------------------------------------------------


def _value(m: Metric, sums: dict[str, np.ndarray]) -> np.ndarray:
    """A metric's value per group, from the group's summed columns (one formula each)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if m.name == "completeness":
            e = sums["expected"]
            return np.where(e > 0, 100.0 * sums["coverage"] / np.where(e > 0, e, 1), 100.0)
        if m.name == "data_quality":
            e = sums["expected"]
            return np.where(e > 0, 100.0 * (e - sums["lost"]) / np.where(e > 0, e, 1), 100.0)
    return sums[m.needs[0]].astype(np.float64)


@dataclass
class Findings:
    """Every evaluation of every rule on every cell of its scope, as columns, worst first
    (errors, then warnings, then passes; within each by how far past the threshold).

    ``symbol`` and ``session`` are ``"*"`` where the scope sums over them.  ``failed`` marks
    the failing evaluations; :attr:`exit_code` is 1 when an ``error`` rule failed.
    """

    rules: list[Rule]
    columns: dict[str, np.ndarray]
    source: str = ""
    cells: int = 0

    COLUMNS = ("rule", "metric", "level", "scope", "interval", "symbol", "session", "value",
               "bound", "threshold", "failed", "excess")

    def __len__(self) -> int:
        return int(self.columns["failed"].shape[0])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    @property
    def failed(self) -> "Findings":
        """Only the failing evaluations."""
        return self.take(np.flatnonzero(self.columns["failed"]))

    def take(self, index: np.ndarray) -> "Findings":
        return Findings(self.rules, {k: v[index] for k, v in self.columns.items()},
                        self.source, self.cells)

    @property
    def errors(self) -> int:
        c = self.columns
        return int((c["failed"] & (c["level"] == "error")).sum())

    @property
    def warnings(self) -> int:
        c = self.columns
        return int((c["failed"] & (c["level"] == "warn")).sum())

    @property
    def exit_code(self) -> int:
        return EXIT_FAIL if self.errors else EXIT_PASS

    @property
    def passed(self) -> bool:
        return self.errors == 0

    def rows(self) -> Iterable[dict[str, Any]]:
        """One dict per finding (for the reports; the columns are the data)."""
        c = {k: v.tolist() for k, v in self.columns.items()}
        for i in range(len(self)):
            yield {k: c[k][i] for k in self.COLUMNS}

    def to_arrow(self) -> "pa.Table":
        import pyarrow as pa

        return pa.table({k: self.columns[k] for k in self.COLUMNS})

    def to_pandas(self) -> "pd.DataFrame":
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("Findings.to_pandas needs pandas: pip install "
                              "'sessiondata[pandas]'") from None
        return pd.DataFrame({k: self.columns[k] for k in self.COLUMNS})

    def per_rule(self) -> list[dict[str, Any]]:
        """Per rule: cells evaluated, failing, and the worst finding's index (or None)."""
        out = []
        idx = self.columns["rule"]
        failed = self.columns["failed"]
        for r, rule in enumerate(self.rules):
            mine = np.flatnonzero(idx == r)
            bad = mine[failed[mine]]
            out.append({"rule": rule, "cells": len(mine), "failed": len(bad),
                        "worst": int(bad[0]) if len(bad) else None})
        return out

    def __repr__(self) -> str:
        return (f"Findings({len(self.rules)} rules, {len(self)} evaluations, "
                f"{self.errors} errors, {self.warnings} warnings)")


def evaluate(cells: Cells, rules: Sequence[Rule]) -> Findings:
    """Evaluate ``rules`` on every cell of their scopes."""
    if not rules:
        raise RuleError("no rules to check: give --fail-under/--fail-over/--warn-under/"
                        "--warn-over, --rules FILE, or [tool.sessiondata.check] in "
                        "pyproject.toml")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in Findings.COLUMNS}
    sym_names = np.array(cells.symbols + [ALL], dtype=object)
    ses_names = np.array(cells.sessions + [ALL], dtype=object)
    iv_names = np.array(cells.intervals, dtype=object)
    for r, rule in enumerate(rules):
        m = metric(rule.metric)
        if rule.interval is None:
            ivs = [cells.intervals.index(cells.base)] if cells.base in cells.intervals else []
        elif rule.interval == ALL:
            ivs = list(range(len(cells.intervals)))
        elif rule.interval in cells.intervals:
            ivs = [cells.intervals.index(rule.interval)]
        else:
            raise RuleError(f"rule {rule.name} ({rule.source}): {cells.source} has no "
                            f"interval {rule.interval!r} (it has {', '.join(cells.intervals)})")
        sel = np.flatnonzero(np.isin(cells.interval, ivs))
        if not len(sel):   # a gate on nothing must not pass
            raise RuleError(f"rule {rule.name} ({rule.source}): {cells.source} has no scored "
                            f"cell of {' '.join(cells.intervals[i] for i in ivs) or 'its interval'}"
                            " to evaluate")
        n_s, n_k = len(cells.symbols), len(cells.sessions)
        sym, ses, iv = cells.symbol[sel], cells.session[sel], cells.interval[sel]
        # Groups of the scope: a key per cell, then its parts back from the key.
        if rule.scope == "cell":
            key = (iv * n_s + sym) * n_k + ses
        elif rule.scope == "symbol":
            key = (iv * n_s + sym) * (n_k + 1) + n_k
        elif rule.scope == "session":
            key = (iv * (n_s + 1) + n_s) * n_k + ses
        else:
            key = (iv * (n_s + 1) + n_s) * (n_k + 1) + n_k
        groups, inverse = np.unique(key, return_inverse=True)
        inverse = inverse.reshape(-1)
        sums = {}
        for col in (m.needs if m.name not in ("completeness", "data_quality") else
                    ("expected",) + tuple(c for c in m.needs if c != "expected")):
            values = cells.column(col, rule)[sel]
            sums[col] = np.bincount(inverse, weights=values, minlength=len(groups))
            if col != "coverage":
                sums[col] = np.rint(sums[col]).astype(np.int64)
        value = _value(m, sums)
        if rule.scope in ("symbol", "totals"):
            g_ses = np.full(len(groups), n_k)
            rest = groups // (n_k + 1)
        else:
            g_ses = groups % n_k
            rest = groups // n_k
        if rule.scope in ("session", "totals"):
            g_sym = np.full(len(groups), n_s)
            g_iv = rest // (n_s + 1)
        else:
            g_sym = rest % n_s
            g_iv = rest // n_s
        thr = float(rule.threshold)
        if rule.bound == "min":
            failed = value < thr
            excess = (thr - value) / max(abs(thr), 1.0)
        else:
            failed = value > thr
            excess = (value - thr) / max(abs(thr), 1.0)
        n = len(groups)
        parts["rule"].append(np.full(n, r, np.int64))
        parts["metric"].append(np.full(n, rule.metric, dtype=object))
        parts["level"].append(np.full(n, rule.level, dtype=object))
        parts["scope"].append(np.full(n, rule.scope, dtype=object))
        parts["interval"].append(iv_names[g_iv] if n else np.empty(0, object))
        parts["symbol"].append(sym_names[g_sym] if n else np.empty(0, object))
        parts["session"].append(ses_names[g_ses] if n else np.empty(0, object))
        parts["value"].append(value.astype(np.float64))
        parts["bound"].append(np.full(n, rule.bound, dtype=object))
        parts["threshold"].append(np.full(n, thr))
        parts["failed"].append(failed)
        parts["excess"].append(excess.astype(np.float64))
    columns = {k: np.concatenate(v) if v else np.empty(0) for k, v in parts.items()}
    # Worst first: failing errors, failing warnings, then passes; by excess within each.
    rank = np.where(columns["failed"], np.where(columns["level"] == "error", 0, 1), 2)
    order = np.lexsort((columns["rule"], -columns["excess"], rank))
    columns = {k: v[order] for k, v in columns.items()}
    return Findings(list(rules), columns, cells.source, len(cells))


def check(result_or_out: Any, rules: Any = None) -> Findings:
    """Evaluate quality rules on an export folder or a run's result.

    Parameters
    ----------
    result_or_out : RunResult, str or os.PathLike
        The result of :func:`sessiondata.run`, or an export folder (``OUT``).
    rules : str, Rule, sequence of Rule or dict, optional
        Rules: a command-line spec (``"completeness=99.5,data_quality=99.9"``, minima that
        fail as errors), :class:`Rule` objects, or a table in the layout of
        ``[tool.sessiondata.check]`` (``{"fail-under": {...}, "rules": [...]}``).  None: the
        ``[tool.sessiondata.check]`` of the nearest ``pyproject.toml``.

    Returns
    -------
    Findings
        Every rule evaluated on every cell of its scope, worst first (``.failed``,
        ``.exit_code``, ``.to_pandas()``, ``.to_arrow()``).
    """
    cells = as_cells(result_or_out)
    return evaluate(cells, as_rules(rules))


def as_cells(result_or_out: Any) -> Cells:
    """The cells of a run's result or of an export folder."""
    if isinstance(result_or_out, Cells):
        return result_or_out
    if isinstance(result_or_out, (str, os.PathLike)):
        return read_cells(result_or_out)
    if hasattr(result_or_out, "intervals") and hasattr(result_or_out, "member"):
        return result_cells(result_or_out)
    raise TypeError(f"check takes a RunResult or an export folder, got "
                    f"{type(result_or_out).__name__}")


def as_rules(rules: Any) -> list[Rule]:
    """Rules from the forms :func:`check` accepts."""
    if rules is None:
        path = find_pyproject()
        return read_rules_file(path) if path else []
    if isinstance(rules, Rule):
        return [rules]
    if isinstance(rules, str):
        return parse_rules(rules, "fail", "rules")
    if isinstance(rules, dict):
        return rules_from_config(rules, "rules")
    out = list(rules)
    if not all(isinstance(r, Rule) for r in out):
        raise TypeError("rules must be a spec string, a table, or Rule objects")
    return out


# -- formats -----------------------------------------------------------------------------------


def _num(x: float) -> str:
    return f"{x:g}" if float(x).is_integer() or abs(x) >= 1e5 else f"{x:.6g}"


def _fmt_value(metric_name: str, v: float) -> str:
    return f"{v:.2f}%" if metric(metric_name).percent else f"{int(round(v)):,}"


def _where(f: dict[str, Any]) -> str:
    parts = [p for p in (f["symbol"], f["session"]) if p != ALL]
    scope = {"symbol": "all sessions", "session": "all symbols", "totals": "all cells"}
    return " ".join(parts + [f["interval"]]) + \
        (f" ({scope[f['scope']]})" if f["scope"] != "cell" else "")


def message(f: dict[str, Any]) -> str:
    """One finding in words: ``CRUX 2024-12-03 1m: completeness 78.46% < 99.5%``."""
    op = "<" if f["bound"] == "min" else ">"
    if not f["failed"]:
        op = ">=" if f["bound"] == "min" else "<="
    pct = "%" if metric(f["metric"]).percent else ""
    return (f"{_where(f)}: {f['metric']} {_fmt_value(f['metric'], f['value'])} {op} "
            f"{_num(f['threshold'])}{pct}")


def headline(findings: Findings) -> str:
    """``FAIL: 3 errors, 1 warning in 4 rules over 12,345 cells`` (or PASS)."""
    state = "FAIL" if findings.errors else "PASS"
    return (f"{state}: {findings.errors:,} error{'s' * (findings.errors != 1)}, "
            f"{findings.warnings:,} warning{'s' * (findings.warnings != 1)} "
            f"({len(findings.rules)} rule{'s' * (len(findings.rules) != 1)}, "
            f"{len(findings):,} evaluation{'s' * (len(findings) != 1)} over "
            f"{findings.cells:,} cells)")


def render_table(findings: Findings, limit: int = 30) -> str:
    """The readable report: the failing cells, worst first (at most ``limit``), then each
    rule with its cells evaluated and failing."""
    lines = [f"sessiondata check {findings.source}: {headline(findings)}"]
    rows: list[Any] = []
    bad = findings.failed
    if len(bad):
        head = ("level", "rule", "interval", "symbol", "session", "value", "threshold")
        for f in list(bad.rows())[:limit]:
            rule = findings.rules[f["rule"]]
            pct = "%" if metric(f["metric"]).percent else ""
            rows.append((f["level"], rule.name, f["interval"], f["symbol"], f["session"],
                         _fmt_value(f["metric"], f["value"]),
                         ("< " if f["bound"] == "min" else "> ") + _num(f["threshold"]) + pct))
        lines += ["", "failing cells, worst first"] + _columns(head, rows, right={5, 6})
        if len(bad) > limit:
            lines.append(f"... and {len(bad) - limit:,} more (--format json lists them all)")
    lines += ["", "rules"]
    rows = []
    for r in findings.per_rule():
        rule = r["rule"]
        worst = "" if r["worst"] is None else message(findings.take(np.array([r["worst"]]))
                                                      .rows().__iter__().__next__())
        rows.append((rule.level, rule.name, rule.scope, f"{r['cells']:,}",
                     f"{r['failed']:,}", worst))
    lines += _columns(("level", "rule", "scope", "cells", "failing", "worst"), rows,
                      right={3, 4})
    return "\n".join(lines)


def _columns(head: Sequence[str], rows: Sequence[Sequence[Any]], right: set[int]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]

    def line(row: Sequence[str]) -> str:
        return "  ".join(str(x).rjust(w) if i in right else str(x).ljust(w)
                         for i, (x, w) in enumerate(zip(row, widths))).rstrip()
    return [line(head)] + [line(r) for r in rows]


def render_json(findings: Findings, everything: bool = False) -> str:
    """JSON Lines: one failing finding per line (every evaluation with ``everything``), each
    with its rule, cell, value and threshold."""
    import orjson

    chosen = findings if everything else findings.failed
    out = []
    for f in chosen.rows():
        f = dict(f)
        f["rule"] = findings.rules[f["rule"]].name
        f["message"] = message(f)
        out.append(orjson.dumps(f).decode())
    return "\n".join(out)


def render_junit(findings: Findings, name: str = "sessiondata check") -> str:
    """JUnit XML (the Ant/Jenkins format CI reporters read; ``tests/junit.xsd`` is its
    schema): a testsuite per symbol (``*`` for rules over all symbols), a testcase per
    session (or ``all sessions``) and rule; failures of ``error`` rules are ``<failure>``
    with the figures, those of ``warn`` rules pass with the figures in ``<system-out>``."""
    from xml.sax.saxutils import escape, quoteattr

    by_symbol: dict[str, list[dict[str, Any]]] = {}
    for f in findings.rows():
        by_symbol.setdefault(f["symbol"], []).append(f)
    order = sorted(by_symbol, key=lambda s: (s == ALL, s))
    failures = int((findings["failed"] & (findings["level"] == "error")).sum())
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<testsuites name={quoteattr(name)} tests="{len(findings)}" '
           f'failures="{failures}" errors="0" time="0">']
    for i, symbol in enumerate(order):
        cases = sorted(by_symbol[symbol], key=lambda f: (f["session"], f["rule"],
                                                         f["interval"]))
        n_fail = sum(1 for f in cases if f["failed"] and f["level"] == "error")
        suite = symbol if symbol != ALL else "all symbols"
        out.append(f'  <testsuite name={quoteattr(suite)} id="{i}" tests="{len(cases)}" '
                   f'failures="{n_fail}" errors="0" skipped="0" time="0">')
        for f in cases:
            rule = findings.rules[f["rule"]]
            session = f["session"] if f["session"] != ALL else "all sessions"
            case = f"{session} {rule.name} [{f['interval']}]"
            open_tag = (f'    <testcase classname={quoteattr("sessiondata." + suite)} '
                        f'name={quoteattr(case)} time="0"')
            if not f["failed"]:
                out.append(open_tag + "/>")
                continue
            out.append(open_tag + ">")
            if f["level"] == "error":
                out.append(f'      <failure message={quoteattr(message(f))} '
                           f'type={quoteattr(f["metric"])}>{escape(_figures(f, rule))}'
                           "</failure>")
            else:
                out.append(f"      <system-out>{escape('warning: ' + _figures(f, rule))}"
                           "</system-out>")
            out.append("    </testcase>")
        out.append("  </testsuite>")
    out.append("</testsuites>")
    return "\n".join(out) + "\n"


def _figures(f: dict[str, Any], rule: Rule) -> str:
    return (f"{message(f)}\nrule: {rule.name} ({rule.level}, scope {rule.scope}"
            f"{', from ' + rule.source if rule.source else ''})\n"
            f"metric: {f['metric']}: {metric(f['metric']).help}\n")


def _gh_escape(text: str, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def render_github(findings: Findings, limit: int = 10) -> str:
    """GitHub Actions workflow commands: one summary annotation, then the worst failing
    cells (GitHub shows the first ten of a step), ``::error`` for error rules,
    ``::warning`` for warnings, ``::notice`` when everything passes."""
    bad = findings.failed
    kind = "error" if findings.errors else "warning" if findings.warnings else "notice"
    lines = [f"::{kind} title={_gh_escape('sessiondata check', True)}::"
             f"{_gh_escape(headline(findings))}"]
    for f in list(bad.rows())[:max(limit - 1, 0)]:
        rule = findings.rules[f["rule"]]
        level = "error" if f["level"] == "error" else "warning"
        lines.append(f"::{level} title={_gh_escape(rule.name, True)}::{_gh_escape(message(f))}")
    if len(bad) > max(limit - 1, 0):
        lines.append(f"::notice title={_gh_escape('sessiondata check', True)}::"
                     f"{len(bad) - max(limit - 1, 0):,} more failing cells (see the step "
                     "summary or --format json)")
    return "\n".join(lines)


def render_markdown(findings: Findings, limit: int = 30) -> str:
    """The step summary: the headline, the rules and the worst failing cells as markdown."""
    lines = [f"### sessiondata check: {headline(findings)}", "",
             "| level | rule | scope | cells | failing | worst |", "|---|---|---|---:|---:|---|"]
    for r in findings.per_rule():
        rule = r["rule"]
        worst = "" if r["worst"] is None else message(next(iter(
            findings.take(np.array([r["worst"]])).rows())))
        lines.append(f"| {rule.level} | `{rule.name}` | {rule.scope} | {r['cells']:,} | "
                     f"{r['failed']:,} | {_md(worst)} |")
    bad = findings.failed
    if len(bad):
        lines += ["", "| level | rule | interval | symbol | session | value | threshold |",
                  "|---|---|---|---|---|---:|---:|"]
        for f in list(bad.rows())[:limit]:
            rule = findings.rules[f["rule"]]
            lines.append(f"| {f['level']} | `{rule.name}` | {f['interval']} | {_md(f['symbol'])} "
                         f"| {_md(f['session'])} | {_fmt_value(f['metric'], f['value'])} | "
                         f"{_num(f['threshold'])} |")
        if len(bad) > limit:
            lines.append(f"\n{len(bad) - limit:,} more failing cells.")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*")


FORMATS = ("table", "json", "junit", "github")


def render(findings: Findings, fmt: str = "table", *, limit: int | None = None,
           everything: bool = False) -> str:
    """The findings in one of :data:`FORMATS`."""
    if fmt == "table":
        return render_table(findings, limit or 30)
    if fmt == "json":
        return render_json(findings, everything)
    if fmt == "junit":
        return render_junit(findings)
    if fmt == "github":
        return render_github(findings, limit or 10)
    raise RuleError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")


def write_step_summary(findings: Findings, path: str | os.PathLike | None = None) -> Path | None:
    """Append the markdown summary to ``$GITHUB_STEP_SUMMARY`` (or ``path``); None when
    neither is set."""
    target = path or os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    with open(target, "a", encoding="utf-8") as f:
        f.write(render_markdown(findings))
    return Path(target)


def gather_rules(*, rules_file: str | None = None, specs: dict[str, list[str]] | None = None,
                 start: str | os.PathLike = ".") -> list[Rule]:
    """The rules of a command line: those of ``rules_file`` (or else of the nearest
    ``pyproject.toml``'s ``[tool.sessiondata.check]``), with the command line's
    (``specs``: option -> specs) added, replacing a file's rule on the same metric, scope,
    interval and level."""
    if rules_file is not None:
        base = read_rules_file(rules_file)
    else:
        path = find_pyproject(start)
        base = read_rules_file(path) if path else []
    given: list[Rule] = []
    for option, texts in (specs or {}).items():
        for text in texts or []:
            given += parse_rules(text, option)
    return merge_rules(base, given)


__all__ = ["Cells", "Findings", "METRICS", "Metric", "Rule", "RuleError", "check", "evaluate",
           "metric", "parse_rules", "read_cells", "read_rules_file", "render", "result_cells",
           "rules_from_config"]
