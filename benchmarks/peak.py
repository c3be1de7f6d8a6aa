"""This process's peak resident memory, for the benchmarks' child processes.

``getrusage(RUSAGE_SELF).ru_maxrss`` is not it on Linux: the peak of the process image that
started the child survives the ``exec`` (``subprocess`` starts a child with ``vfork``, whose
memory is the parent's until then), so a child of a 1.6 GiB pytest process reports 1.6 GiB
whatever it did itself.  ``VmHWM`` in ``/proc/self/status`` is the peak of the child's own
memory; ``ru_maxrss`` stays the answer where there is no ``/proc``.
"""

from __future__ import annotations

import resource
import sys


def peak_rss_bytes() -> int:
    """Peak resident memory of this process, in bytes (VmHWM; ``ru_maxrss`` without /proc)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024   # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
