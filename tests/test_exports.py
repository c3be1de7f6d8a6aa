"""Exports: ``export_session`` and ``validate_export``: exact round trips, file names that stay
inside the folder, atomic writes under interruption, and tampering that validation catches."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import sessiondata
from sessiondata import Bars, Calendar, SessionCoordinator, SessionData
from sessiondata import export as export_mod
from sessiondata.export import (
    bars_to_csv,
    export_session,
    filename_symbol,
    read_bars_csv,
    symbol_filename,
    validate_export,
    write_atomic,
    write_bars_csv,
)

from helpers import ohlcv

MINUTE = 60_000_000_000


def awkward_bars(o: int) -> Bars:
    """Bars whose floats need all 17 digits, or are subnormal, huge, negative zero..."""
    prices = [0.1 + 0.2, 1 / 3, np.nextafter(1.0, 2.0), 5e-324, 1.7976931348623157e308,
              -0.0, -1e-300, 123456789.12345679, 2.0 ** -1074 * 3, 1e22]
    n = len(prices)
    p = np.array(prices)
    ts = o + np.arange(n, dtype=np.int64) * MINUTE
    vol = np.array([0.0, -0.0, 1e-320, 0.30000000000000004, 7.0, 1e300, 2.5, 3.0, 4.0, 5.0])
    return Bars(ts, p, p, p, p, vol)


def bitwise_equal(a: Bars, b: Bars) -> bool:
    ca, cb = a.columns(), b.columns()
    if ca.keys() != cb.keys():
        return False
    for k in ca:
        if ca[k].dtype != cb[k].dtype or ca[k].shape != cb[k].shape:
            return False
        if not np.array_equal(ca[k].view(np.int64), cb[k].view(np.int64)):
            return False
    return True


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def live(tmp_path):
    """A session on a 24/7 calendar with three symbols, gaps, a dropped bar and an unknown
    symbol; gaps and quality computed."""
    c = SessionCoordinator(Calendar.always(), derived_intervals=["5m", "1h", "1d"],
                           on_bad="drop")
    sd = c.start("2024-03-15")
    o = int(sd.windows.open_ns[0])
    ts = o + np.arange(600, dtype=np.int64) * MINUTE
    for i, sym in enumerate(["AAA", "BBB", "C.C"]):
        keep = np.ones(600, bool)
        keep[50 * (i + 1): 50 * (i + 1) + 7 * (i + 1)] = False
        c.add_and_load(sym, ohlcv(ts[keep], i))
    c.add_symbol("ODD")
    c.load("ODD", awkward_bars(o))
    assert c.stream("AAA", o, 1.0, 1.0, 1.0, 1.0, 1.0) != 0   # out of order: dropped
    assert c.stream("ZZZ", o, 1.0, 1.0, 1.0, 1.0, 1.0) == -1
    c.quality.calculate_all(o + 600 * MINUTE)
    return c, sd


# ------------------------------------------------------------------------------- round trips


def test_json_round_trips_exactly(live, tmp_path):
    c, sd = live
    doc = export_session(sd, tmp_path / "out")
    text = (tmp_path / "out" / "session.json").read_text(encoding="utf-8")

    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    read = json.loads(text, parse_constant=no_constants)
    assert read == doc == json.loads(json.dumps(sd.to_json()))
    assert sorted(read["symbols"]) == ["AAA", "BBB", "C.C", "ODD"]
    assert read["unknown_bars"] == {"ZZZ": 1}
    assert read["symbols"]["AAA"]["rejected"] == {"timestamp out of order": 1}
    assert validate_export(tmp_path / "out", sd) == []


def test_csv_round_trips_exactly(live, tmp_path):
    c, sd = live
    export_session(sd, tmp_path)
    n = 0
    for sym in sd.get_active_symbols():
        entry = sd.get_symbol_data(sym)
        for iv in entry.intervals():
            path = tmp_path / "bars" / f"{symbol_filename(sym)}.{iv}.csv"
            got = read_bars_csv(path)
            assert bitwise_equal(got, entry.bars(iv)), (sym, iv)
            assert got.equals(entry.bars(iv))
            n += 1
    assert n == 16 and len(list((tmp_path / "bars").iterdir())) == 16


@pytest.mark.parametrize("derived", [False, True])
def test_bars_to_csv_and_back_is_bit_exact(tmp_path, derived):
    bars = awkward_bars(1_700_000_000 * 10**9)
    if derived:
        n = len(bars)
        bars = Bars(*(getattr(bars, k) for k in ("ts", "open", "high", "low", "close", "volume")),
                    count=np.arange(1, n + 1), coverage=np.arange(1, n + 1) / 7.0)
    write_bars_csv(tmp_path / "x.csv", bars)
    assert bitwise_equal(read_bars_csv(tmp_path / "x.csv"), bars)
    assert (tmp_path / "x.csv").read_text() == bars_to_csv(bars)
    empty = Bars.empty()
    write_bars_csv(tmp_path / "e.csv", empty)
    assert len(read_bars_csv(tmp_path / "e.csv")) == 0


# ------------------------------------------------------------------------------- file names


HOSTILE = ["../x", "a/b", "EUR/USD", "..", ".", "/etc/passwd", "..\\..\\x", "a\\b",
           "../../../../tmp/evil", ".hidden", "~root", "%2e%2e%2fx", "a%2Fb", "C:\\x",
           "Ünïcødé/指数", "x" * 240, "指" * 100, "a b", "*?<>|\"'", "-rf"]


def test_hostile_symbol_names_never_write_outside_the_folder(tmp_path):
    sd = SessionData(Calendar.always())
    sd.start_session("2024-03-15")
    o = int(sd.windows.open_ns[0])
    for i, sym in enumerate(HOSTILE):
        sd.add_symbol(sym, "1m", ["5m"])
        sd.add_bars(sym, ohlcv(o + np.arange(12, dtype=np.int64) * MINUTE, i))
    root = tmp_path / "root"
    folder = root / "inner" / "export"
    root.mkdir()
    (root / "sentinel").write_text("x")
    before = files_under(tmp_path)
    export_session(sd, folder)
    created = files_under(tmp_path) - before
    inside = folder.resolve()
    assert all(inside in p.resolve().parents for p in created), sorted(map(str, created))
    assert all(p.parent.resolve() == inside / "bars" for p in created
               if p.name != "session.json")
    assert len(created) == 1 + 2 * len(HOSTILE)         # distinct names, none lost
    assert not [p for p in created if p.name.startswith(".")]
    assert files_under(tmp_path) - created == before       # nothing else touched
    assert validate_export(folder, sd) == []
    for sym in HOSTILE:
        name = symbol_filename(sym)
        assert "/" not in name and "\\" not in name and not name.startswith(".")
        assert len(name.encode()) <= 200
        if "%~" not in name:
            assert filename_symbol(name) == sym
        else:  # shortened: a prefix of the symbol and a digest
            assert sym.startswith(filename_symbol(name)) and len(sym.encode()) > 60


@pytest.mark.parametrize("symbol", ["a\nb", "a\rb", "\x00", "nul\x00byte", "a\x7f", "\x1b[2J",
                                    "tab\there", "a\x85b", "bidi\u202etxt", "zw\u200bsp"])
def test_control_characters_in_a_symbol_are_rejected_at_add_symbol(symbol):
    c = SessionCoordinator()
    sd = c.start("2024-03-15")
    with pytest.raises(ValueError, match="control"):
        c.add_symbol(symbol)
    assert sd.get_active_symbols() == []


# ----------------------------------------------------------------------------- atomic writes


def test_interrupted_rename_keeps_the_previous_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    write_atomic(target, "old contents\n")

    def boom(src, dst):
        raise OSError("power cut")

    monkeypatch.setattr(export_mod.os, "replace", boom)
    with pytest.raises(OSError, match="power cut"):
        write_atomic(target, "new contents\n")
    assert target.read_text() == "old contents\n"
    assert os.listdir(tmp_path) == ["f.txt"]


class _HalfWriter:
    """A file that writes half of what it is given, then is interrupted."""

    def __init__(self, f, exc):
        self._f, self._exc = f, exc

    def write(self, data):
        self._f.write(data[: len(data) // 2])
        self._f.flush()
        raise self._exc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()
        return False

    def __getattr__(self, name):
        return getattr(self._f, name)


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
@pytest.mark.parametrize("previous", [True, False])
def test_interrupted_write_leaves_previous_or_nothing(tmp_path, monkeypatch, exc, previous):
    target = tmp_path / "bars.csv"
    if previous:
        write_atomic(target, "old\n")
    real_fdopen = os.fdopen
    monkeypatch.setattr(export_mod.os, "fdopen",
                        lambda fd, *a, **k: _HalfWriter(real_fdopen(fd, *a, **k), exc))
    with pytest.raises(type(exc)):
        write_atomic(target, "new, and long enough to be cut in half\n" * 100)
    if previous:
        assert target.read_text() == "old\n"
        assert os.listdir(tmp_path) == ["bars.csv"]
    else:
        assert os.listdir(tmp_path) == []


def test_interrupted_export_keeps_whole_files_and_leaves_no_temp(live, tmp_path, monkeypatch):
    c, sd = live
    folder = tmp_path / "exp"
    export_session(sd, folder)
    old = {p: p.read_bytes() for p in files_under(folder)}
    o = int(sd.windows.open_ns[0])
    for sym in ("AAA", "BBB", "C.C"):   # more bars: every file changes
        assert c.stream(sym, o + 700 * MINUTE, 1.0, 1.0, 1.0, 1.0, 1.0) == 0
    c.processor.finish()
    calls = {"n": 0}
    real_replace = os.replace

    def replace_then_fail(src, dst):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt()
        return real_replace(src, dst)

    monkeypatch.setattr(export_mod.os, "replace", replace_then_fail)
    with pytest.raises(KeyboardInterrupt):
        export_session(sd, folder)
    monkeypatch.undo()
    assert files_under(folder) == set(old)              # no temp file left anywhere
    new_doc = export_session(sd, tmp_path / "fresh")
    fresh = {p.relative_to(tmp_path / "fresh"): p.read_bytes()
             for p in files_under(tmp_path / "fresh")}
    replaced = 0
    for p, data in old.items():
        now = p.read_bytes()
        assert now in (data, fresh[p.relative_to(folder)]), p   # whole old or whole new
        replaced += now != data
    assert replaced == 4
    assert (folder / "session.json").read_bytes() == old[folder / "session.json"]
    # The mixed folder does not pass as sound, and a complete export repairs it.
    assert validate_export(folder) != []
    assert export_session(sd, folder) == new_doc
    assert validate_export(folder, sd) == []


# ------------------------------------------------------------------------ tamper detection


@pytest.fixture
def exported(live, tmp_path):
    c, sd = live
    folder = tmp_path / "exp"
    export_session(sd, folder)
    assert validate_export(folder) == [] and validate_export(folder, sd) == []
    return sd, folder


def _csv(folder, sym="BBB", iv="1m") -> Path:
    return folder / "bars" / f"{symbol_filename(sym)}.{iv}.csv"


def _edit_lines(path: Path, edit) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(edit(lines)))


def _set_field(line: str, index: int, value: str) -> str:
    fields = line.rstrip("\n").split(",")
    fields[index] = value
    return ",".join(fields) + "\n"


def test_validate_catches_a_changed_value(exported):
    sd, folder = exported
    path = _csv(folder)
    line = path.read_text().splitlines()[6].split(",")
    o, h, lo, cl = map(float, line[2:6])
    mid = repr((h + lo) / 2 if (h + lo) / 2 != cl else lo)
    _edit_lines(path, lambda ls: ls[:6] + [_set_field(ls[6], 5, mid)] + ls[7:])
    problems = validate_export(folder, sd)
    assert len(problems) == 1 and "differs from the bars held" in problems[0]


def test_validate_catches_a_value_breaking_the_bar_invariants(exported):
    sd, folder = exported
    path = _csv(folder, "AAA", "5m")
    _edit_lines(path, lambda ls: ls[:3] + [_set_field(ls[3], 3, "-1.0")] + ls[4:])  # high
    problems = validate_export(folder)
    assert len(problems) == 1 and str(path) in problems[0]


def test_validate_catches_reordered_rows(exported):
    sd, folder = exported
    path = _csv(folder)
    _edit_lines(path, lambda ls: ls[:10] + [ls[11], ls[10]] + ls[12:])
    problems = validate_export(folder)
    assert len(problems) == 1 and "out of order" in problems[0] and str(path) in problems[0]


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_validate_catches_a_missing_row(exported, where):
    sd, folder = exported
    path = _csv(folder, "C.C", "1m")
    k = {"first": 1, "middle": 100, "last": -1}[where]
    _edit_lines(path, lambda ls: [line for i, line in enumerate(ls)
                                  if i != (k if k > 0 else len(ls) - 1)])
    problems = validate_export(folder)
    assert len(problems) == 1 and "session.json says" in problems[0]


def test_validate_catches_a_time_column_that_disagrees_with_ts(exported):
    sd, folder = exported
    path = _csv(folder)
    _edit_lines(path, lambda ls: ls[:2] + [_set_field(ls[2], 1, "2024-03-15T00:00:00Z")] + ls[3:])
    problems = validate_export(folder)
    assert len(problems) == 1 and "does not match ts" in problems[0]


def _edit_json(folder: Path, edit) -> None:
    path = folder / "session.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("tamper, message", [
    (lambda iv: iv["gaps"].__setitem__("gap_count", iv["gaps"]["gap_count"] + 1), "gap_count"),
    (lambda iv: iv["gaps"].__setitem__("gap_count", 0), "gap_count"),
    (lambda iv: iv["gaps"].__setitem__("missing_bars", 1), "missing_bars"),
    (lambda iv: iv["gaps"]["ranges"][0].__setitem__("bar_count", 0), "range"),
    (lambda iv: iv["quality"].__setitem__("present", iv["quality"]["present"] + 1),
     "expected != present + missing"),
    (lambda iv: iv["quality"].__setitem__("score", 100.5), "out of [0, 100]"),
    (lambda iv: iv.__setitem__("bars", iv["bars"] + 1), "session.json says"),
    (lambda iv: iv.pop("gaps"), "no gaps object"),
])
def test_validate_catches_a_tampered_json(exported, tamper, message):
    sd, folder = exported
    _edit_json(folder, lambda doc: tamper(doc["symbols"]["BBB"]["intervals"]["1m"]))
    problems = validate_export(folder)
    assert problems and all("BBB" in p for p in problems)
    assert any(message in p for p in problems), problems


def test_validate_catches_an_unreadable_or_incomplete_json(exported):
    sd, folder = exported
    _edit_json(folder, lambda doc: doc.pop("symbols"))
    assert any("symbols" in p for p in validate_export(folder))
    (folder / "session.json").write_text('{"session": "2024-03-15", "symbols": {')
    problems = validate_export(folder)
    assert len(problems) == 1 and "cannot read" in problems[0]
    (folder / "session.json").unlink()
    assert "cannot read" in validate_export(folder)[0]


def test_empty_session_export_is_valid(tmp_path):
    sd = SessionData(sessiondata.Calendar.exchange("XNYS"))
    sd.start_session("2024-03-15")
    doc = export_session(sd, tmp_path)
    assert doc["symbols"] == {} and files_under(tmp_path) == {tmp_path / "session.json"}
    assert validate_export(tmp_path, sd) == []
    assert json.loads((tmp_path / "session.json").read_text()) == doc
    assert len(doc["windows"]) == 1
