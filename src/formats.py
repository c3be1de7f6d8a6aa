"""Moved: the vendor formats are :mod:`sessiondata.readers.vendor` (issue 19's readers
package).  This module keeps ``sessiondata.formats`` importable for code written before."""

from __future__ import annotations

from .readers.vendor import (  # noqa: F401 - re-exported
    EXTRA_HINT, FORMATS, read_binance, read_databento, read_format, read_lean,
)
