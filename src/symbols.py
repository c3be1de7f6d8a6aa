"""Symbol names: the one rule every source (files, vendor formats, the live registry) checks.

It lives below both the readers and the live registry (``sessiondata.session``), so that
reading a file does not import the registry.
"""

from __future__ import annotations

import unicodedata
from typing import Any

__all__ = ["check_symbol"]


def check_symbol(symbol: Any) -> str:
    """A symbol must be a non-empty string without control characters.

    Parameters
    ----------
    symbol : str

    Returns
    -------
    str
        ``symbol`` itself.

    Raises
    ------
    TypeError
        When ``symbol`` is not a string.
    ValueError
        When it is empty, has surrounding spaces or holds control characters (a line
        break, a tab, a NUL ...).
    """
    if not isinstance(symbol, str):
        raise TypeError(f"symbol must be a string, got {type(symbol).__name__}")
    if not symbol or symbol.strip() != symbol:
        raise ValueError(f"symbol {symbol!r} is empty or has surrounding spaces")
    bad = [ch for ch in symbol if unicodedata.category(ch).startswith("C")]
    if bad:
        raise ValueError(f"symbol {symbol!r} contains control characters")
    return symbol
