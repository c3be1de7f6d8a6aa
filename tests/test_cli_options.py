"""The options every command takes (``-q``/``--quiet``, ``--debug``) work before and after the
command's name (issue 10): argparse gives a subcommand's copy of an option its default, which
used to overwrite the one given before the command."""

from __future__ import annotations

import pytest

from sessiondata.cli import build_parser, main


@pytest.mark.parametrize("argv,quiet,debug", [
    (["run"], False, False),
    (["-q", "run"], True, False),
    (["--quiet", "run"], True, False),
    (["run", "-q"], True, False),
    (["--debug", "run"], False, True),
    (["run", "--debug"], False, True),
    (["-q", "run", "--debug"], True, True),
    (["--debug", "-q", "run", "-q", "--debug"], True, True),
    (["-q", "validate", "DIR"], True, False),
    (["validate", "DIR", "--debug"], False, True),
    (["--debug", "validate", "DIR"], False, True),
])
def test_common_options_before_and_after_the_command(argv, quiet, debug):
    args = build_parser().parse_args(argv)
    assert (args.quiet, args.debug) == (quiet, debug)


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_run_prints_nothing(tmp_path, capsys, where):
    argv = ["run", "--out", str(tmp_path / "out")]
    argv = ["-q"] + argv if where == "before" else argv + ["-q"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    assert any((tmp_path / "out").iterdir())
    assert main(["run", "--out", str(tmp_path / "loud")]) == 0
    assert capsys.readouterr().out != ""


@pytest.mark.parametrize("where", ["before", "after", None])
def test_debug_shows_the_traceback_wherever_it_is_given(tmp_path, capsys, where):
    argv = ["run", str(tmp_path / "none.csv"), "--calendar", "24/7"]
    if where == "before":
        argv = ["--debug"] + argv
    elif where == "after":
        argv = argv + ["--debug"]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "none.csv" in err
    assert ("Traceback" in err) == (where is not None)
