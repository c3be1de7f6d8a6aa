"""The compiled kernels of sessiondata: no policy, no validation of arguments beyond what
keeps memory safe.  The Python modules of the package are the interface."""

try:
    from . import (
        aggregation,
        anomalies,
        classify,
        gaps,
        quality,
        render,
        stream,
        validation,
    )
except ImportError as _exc:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        "sessiondata's compiled core (sessiondata._core) is not built. Install the package "
        "with `pip install .` (or `pip install -e .` for development) from the source tree; "
        "that needs a C compiler. There is no pure-Python fallback."
    ) from _exc

__all__ = ["aggregation", "anomalies", "classify", "gaps", "quality", "render", "stream", "validation"]
