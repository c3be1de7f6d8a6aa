"""``Fault``: why a bar was refused, by name.

The compiled kernels return these codes (``SessionData.add_bar`` under ``drop``,
``SymbolStream.push``/``push_many``, the validation kernel); ``BadBarError.fault`` and the
quality report's rejected counts use them too.  ``Fault`` is an ``IntEnum``: a code from a
kernel compares equal to its member, and ``Fault(code)`` names it.
"""

from __future__ import annotations

import enum

from ._core import validation as _validation


class Fault(enum.IntEnum):
    """A fault code of the kernels (``sessiondata._core`` ``common.pxd``)."""

    NONE = 0
    NONFINITE = 1      # open/high/low/close is NaN or infinite
    HIGH_LOW = 2       # high below open/close/low, or low above open/close
    VOLUME = 3         # volume negative, NaN or infinite
    UNSORTED = 4       # timestamp earlier than the previous accepted bar
    DUPLICATE = 5      # timestamp equal to the previous accepted bar
    OUTSIDE = 6        # timestamp outside every session window
    MISALIGNED = 7     # timestamp not on the base-interval grid of its window
    OVERFLOW = 8       # more output than the caller allocated (never on valid input)
    LATE = 9           # its derived bar was already closed (advance, stop)

    @property
    def reason(self) -> str:
        """The words the messages and the quality report use ("" for NONE)."""
        return _validation.FAULTS.get(int(self), "")


# The faults the ``revise`` policy takes as revisions of what is held.
REVISABLE = frozenset({Fault.UNSORTED, Fault.DUPLICATE, Fault.LATE})

if set(_validation.FAULTS) != {f.value for f in Fault if f is not Fault.NONE}:
    raise ImportError("sessiondata.faults is out of step with the compiled kernels' fault "
                      "codes: rebuild the extension (pip install -e .)")
