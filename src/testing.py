"""Helpers for a project's own tests: assert that an export (or a run) meets quality rules.

::

    from sessiondata.testing import assert_quality

    def test_vendor_history_is_good_enough():
        assert_quality("out/", completeness=99.5, data_quality=99.9, gaps_over_30=0)

A failure raises ``AssertionError`` whose message is the table ``sessiondata check`` prints:
the failing cells, worst first, then every rule with its cells evaluated and failing.
"""

from __future__ import annotations

from typing import Any

from .check import Findings, Rule, as_rules, check, metric, render_table

__all__ = ["assert_quality"]


def assert_quality(result_or_out: Any, rules: Any = None, *, scope: str = "cell",
                   interval: str | None = None, limit: int = 30,
                   **thresholds: float) -> Findings:
    """Fail (``AssertionError``) when an error rule fails on any cell of an export or a run.

    Parameters
    ----------
    result_or_out : RunResult, str or os.PathLike
        The result of :func:`sessiondata.run`, or an export folder.
    rules : optional
        Rules in any form :func:`sessiondata.check` takes (a spec string, :class:`Rule`
        objects, a ``[tool.sessiondata.check]``-like table).  None with no ``thresholds``:
        the ``[tool.sessiondata.check]`` of the nearest ``pyproject.toml``.
    scope, interval : str, optional
        Scope and interval of the rules given as keywords (default: every cell of the base
        interval).
    limit : int
        Failing cells shown in the message.
    **thresholds : float
        Rules as keywords, each with the metric's own bound: ``completeness=99.5`` (a
        minimum), ``outage=0`` or ``gaps_over_30=0`` (maxima).

    Returns
    -------
    Findings
        The findings, when no error rule failed (warnings may have).
    """
    given = [Rule(name, metric(name).direction, float(value), scope, interval, "error",
                  "assert_quality")
             for name, value in thresholds.items()]
    chosen = (as_rules(rules) if rules is not None or not given else []) + given
    findings = check(result_or_out, chosen)
    if findings.errors:
        raise AssertionError("\n" + render_table(findings, limit))
    return findings
