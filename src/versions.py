"""The installed versions of the libraries that move results (the calendar store's key, the
export's provenance), read without ``importlib.metadata``: importing it and scanning every
path entry costs ~40 ms of each command's start-up, while the version is in the name of the
``<name>-<version>.dist-info`` folder beside the package."""

from __future__ import annotations

import importlib.util
import os


def installed_version(dist: str) -> str | None:
    """The version of the installed distribution ``dist`` (whose import name is ``dist``
    too), None when it is not installed.

    Read from the one ``dist-info`` folder of that name beside the package that imports;
    anything else (none there, several, an egg, an editable install elsewhere) asks
    ``importlib.metadata``."""
    norm = dist.replace("-", "_").replace(".", "_").lower()
    try:
        spec = importlib.util.find_spec(dist)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        site = os.path.dirname(os.path.dirname(spec.origin))
        try:
            entries = os.listdir(site)
        except OSError:
            entries = []
        found = [entry[:-len(".dist-info")].partition("-")[2] for entry in entries
                 if entry.endswith(".dist-info") and entry.partition("-")[0].replace(
                     ".", "_").lower() == norm]
        if len(found) == 1 and found[0]:
            return found[0]
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
