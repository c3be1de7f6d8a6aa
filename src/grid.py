"""Deprecated name of :mod:`sessiondata.kernels` (kept while branches that import it are in
flight; import from ``kernels``)."""

from .kernels import *  # noqa: F401,F403
from .kernels import (  # noqa: F401 - private names some callers used
    I64_MAX,
    I64_MIN,
    _slots,
)
