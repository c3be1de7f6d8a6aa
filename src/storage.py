"""Object storage: data and exports at ``s3://``, ``gs://``, ``az://``/``abfs://`` and ``file://``
URLs, and the commit protocol of an export on a store that has no rename.

A URL (or a plain path, with ``filesystem=``) resolves to a ``pyarrow.fs.FileSystem`` and a
path inside it: S3 through pyarrow's own ``S3FileSystem`` (credentials from the usual places:
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``~/.aws/credentials``, ``AWS_PROFILE``, an
instance role; ``AWS_ENDPOINT_URL`` for an S3-compatible store), Google Cloud Storage and Azure
Blob storage through fsspec (``gcsfs``, ``adlfs``: ``pip install 'sessiondata[gcs]'`` or
``[azure]``) wrapped as a pyarrow file system.  ``--storage-option KEY=VALUE`` (Python:
``storage_options={...}``) gives the rest (``endpoint_url``, ``region``, ``anon``, ...).

The file systems pickle, so a Dask task carries the one its partition needs and the worker
opens its own file: the client lists a prefix, never reads the data.

Exports on a store (``--out s3://bucket/out``)::

    OUT/runs/<run>/sessions/<date>.json, bars/..., gaps/...   a run's files, under its prefix
    OUT/runs/<run>/manifest.json                              the run's manifest (as on disk)
    OUT/manifests/<run>.json                                  the commit: written last

A run writes everything under its own prefix, then the commit record, which is the manifest
with the list of the run's files; the export is the run of the latest commit record
(``<run>`` sorts by time).  A run that fails or is killed before its commit leaves the
previous export as it was and its files under ``runs/<run>/``, which :func:`uncommitted`
lists (and :func:`remove_uncommitted` deletes).  On a local disk nothing of this applies: an
export is a folder swapped in by renames (``sessiondata.export``).
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import posixpath
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

SCHEMES = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure",
           "abfs": "azure", "abfss": "azure", "file": "file"}
RUNS = "runs"
COMMITS = "manifests"
_URL_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# Options set once for the process (the command line's --storage-option).
_defaults: dict[str, str] = {}


class StorageError(OSError):
    """A store could not be reached or read: one line naming the URL and why."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message.split(": ", 1)[-1]

    def __str__(self) -> str:
        return str(self.args[0])

    def at(self, url: str) -> "StorageError":
        """The same reason, naming ``url`` (what the user gave) instead."""
        return StorageError(f"{url}: {self.reason}", self.reason)


def is_url(target: Any) -> bool:
    """Whether ``target`` is a URL of a known store (``s3://``, ``gs://``, ``file://``, ...)."""
    if not isinstance(target, str):
        return False
    m = _URL_RE.match(target)
    return m is not None and m.group(1).lower() in SCHEMES


def is_remote(target: Any, filesystem: Any = None) -> bool:
    """Whether ``target`` lives on an object store (a URL other than ``file://``, or any path
    with a ``filesystem`` that is not the local one)."""
    if filesystem is not None:
        import pyarrow.fs as pafs

        return not isinstance(filesystem, pafs.LocalFileSystem)
    return is_url(target) and not str(target).lower().startswith("file://")


def parse_options(pairs: Iterable[str] | None) -> dict[str, str]:
    """``KEY=VALUE`` strings (``--storage-option``) as a mapping; a malformed one is a
    ValueError naming it."""
    out: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--storage-option {pair!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def set_default_options(options: Mapping[str, str]) -> None:
    """The storage options of every URL resolved in this process from now on (the command
    line's ``--storage-option``)."""
    _defaults.clear()
    _defaults.update(options)


def _extra_error(extra: str, package: str, url: str) -> ImportError:
    return ImportError(f"{url}: reading and writing {extra.upper() if extra != 'azure' else 'Azure'}"
                       f" storage needs {package}: pip install 'sessiondata[{extra}]'")


_TRUE = ("1", "true", "yes", "on")


def _s3(url: str, bucket_path: str, options: Mapping[str, Any]) -> Any:
    try:
        import pyarrow.fs as pafs

        s3_class = pafs.S3FileSystem
    except (ImportError, AttributeError):
        return _fsspec("s3", "s3fs", url, options)
    kw: dict[str, Any] = {}
    opts = {k.lower(): v for k, v in options.items()}
    endpoint = opts.pop("endpoint_url", None) or opts.pop("endpoint_override", None) \
        or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        scheme, sep, rest = str(endpoint).partition("://")
        kw["endpoint_override"] = rest if sep else scheme
        kw["scheme"] = scheme if sep else "https"
    for name, arg in (("key", "access_key"), ("access_key", "access_key"),
                      ("aws_access_key_id", "access_key"), ("secret", "secret_key"),
                      ("secret_key", "secret_key"), ("aws_secret_access_key", "secret_key"),
                      ("token", "session_token"), ("session_token", "session_token"),
                      ("region", "region"), ("region_name", "region"),
                      ("profile", "_profile")):
        if name in opts:
            kw[arg] = opts.pop(name)
    if "anon" in opts:
        kw["anonymous"] = str(opts.pop("anon")).lower() in _TRUE
    if "request_timeout" in opts:
        kw["request_timeout"] = float(opts.pop("request_timeout"))
        kw["connect_timeout"] = kw["request_timeout"]
    profile = kw.pop("_profile", None)
    if profile:
        os.environ.setdefault("AWS_PROFILE", str(profile))
    if opts:
        raise ValueError(f"{url}: unknown storage option(s) for S3: {', '.join(sorted(opts))} "
                         "(known: endpoint_url, key, secret, token, region, anon, profile, "
                         "request_timeout)")
    if "region" not in kw and not os.environ.get("AWS_DEFAULT_REGION") \
            and not os.environ.get("AWS_REGION") and "endpoint_override" in kw:
        kw["region"] = "us-east-1"   # an S3-compatible server: no region lookup
    # Fewer retries than the default (a wrong endpoint would take minutes to say so).
    kw.setdefault("retry_strategy", pafs.AwsStandardS3RetryStrategy(max_attempts=3))
    # An object written in one request (PutObject) when it fits one part: fewer round
    # trips, and the only way some S3-compatible servers accept small objects.
    kw.setdefault("allow_delayed_open", True)
    return s3_class(**kw)


def _fsspec(kind: str, package: str, url: str, options: Mapping[str, Any]) -> Any:
    import importlib

    try:
        importlib.import_module(package)
        import fsspec
    except ImportError:
        raise _extra_error({"s3": "s3", "gcsfs": "gcs", "adlfs": "azure"}.get(package, kind),
                           package, url) from None
    import pyarrow.fs as pafs

    protocol = {"gcs": "gcs", "azure": "abfs", "s3": "s3"}[kind]
    fs = fsspec.filesystem(protocol, **dict(options))
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs))


def resolve(target: str | os.PathLike, filesystem: Any = None,
            storage_options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """The file system and the path inside it of a URL or a plain path.

    Parameters
    ----------
    target : str or path-like
        ``s3://bucket/prefix``, ``gs://bucket/prefix``, ``az://container/prefix`` (or
        ``abfs://``), ``file:///abs/path``, or a path (of ``filesystem`` when given, else of
        this machine).
    filesystem : pyarrow.fs.FileSystem or fsspec file system, optional
        The file system of a plain path (an fsspec one is wrapped for pyarrow).
    storage_options : mapping, optional
        Options of the store (added to the command line's ``--storage-option``).

    Returns
    -------
    (pyarrow.fs.FileSystem, str)
    """
    import pyarrow.fs as pafs

    text = os.fspath(target)
    if filesystem is not None:
        if not isinstance(filesystem, pafs.FileSystem):
            filesystem = pafs.PyFileSystem(pafs.FSSpecHandler(filesystem))
        return filesystem, _strip_scheme(text)
    m = _URL_RE.match(text)
    if not m:
        return pafs.LocalFileSystem(), os.path.abspath(text)
    scheme = m.group(1).lower()
    kind = SCHEMES.get(scheme)
    if kind is None:
        raise ValueError(f"{text}: unknown storage scheme {scheme!r} (known: "
                         f"{', '.join(sorted(SCHEMES))})")
    options = {**_defaults, **dict(storage_options or {})}
    rest = text[m.end():]
    if kind == "file":
        return pafs.LocalFileSystem(), rest if rest.startswith("/") else "/" + rest
    path = rest.strip("/")
    if not path:
        raise ValueError(f"{text}: the URL names no bucket")
    if kind == "s3":
        return _s3(text, path, options), path
    if kind == "gcs":
        return _fsspec("gcs", "gcsfs", text, options), path
    return _fsspec("azure", "adlfs", text, options), path


def _strip_scheme(text: str) -> str:
    m = _URL_RE.match(text)
    return text[m.end():].strip("/") if m else text


def url_of(fs: Any, path: str) -> str:
    """A URL that names ``path`` of ``fs`` in messages."""
    name = getattr(fs, "type_name", "")
    if name == "local":
        return path
    scheme = {"s3": "s3", "gcs": "gs", "abfs": "az"}.get(name, name or "store")
    if name == "py":
        handler = getattr(fs, "handler", None)
        proto = getattr(getattr(handler, "fs", None), "protocol", "store")
        scheme = proto[0] if isinstance(proto, (tuple, list)) else str(proto)
    return f"{scheme}://{path}"


def _short(exc: BaseException) -> str:
    """A store's error in a few words (pyarrow's AWS errors run over several lines)."""
    text = " ".join(str(exc).split())
    for pattern, say in (
            (r"NoSuchBucket|bucket does not exist|The specified bucket", "no such bucket"),
            (r"InvalidAccessKeyId|INVALID_ACCESS_KEY_ID|SignatureDoesNotMatch|SIGNATURE_DOES_NOT_MATCH|ACCESS_DENIED|AccessDenied|"
             r"Forbidden|HTTP status 403|Access Denied",
             "access denied (check the credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
             "~/.aws/credentials or --storage-option key=... secret=...)"),
            (r"Path does not exist|NoSuchKey|No such file|not found", "no such file or prefix"),
            (r"Could not connect|Couldn't connect|curlCode: 7|Connection refused|"
             r"Failed to connect", "cannot connect to the store (check AWS_ENDPOINT_URL or "
                                   "--storage-option endpoint_url=...)")):
        if re.search(pattern, text, re.IGNORECASE):
            return say
    return text[:300]


def error(url: str, exc: BaseException, doing: str = "") -> StorageError:
    """A :class:`StorageError` of one line naming ``url`` (and what was being done)."""
    what = f" ({doing})" if doing else ""
    reason = f"{_short(exc)}{what}"
    return StorageError(f"{url}: {reason}", reason)


# -- files --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stat:
    st_size: int
    st_mtime_ns: int


class StoreFile:
    """A file of a store as the readers take it: the surface of ``pathlib.Path`` they use
    (``name``, ``suffix``, ``stat()``, ``str()`` the URL) and the means to open it.  It
    pickles with its file system, so a Dask worker opens it itself."""

    def __init__(self, fs: Any, path: str, size: int = -1, mtime_ns: int = 0):
        self.fs = fs
        self.path = path
        self.size = size
        self.mtime_ns = mtime_ns

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def suffix(self) -> str:
        return posixpath.splitext(self.name)[1]

    def __str__(self) -> str:
        return url_of(self.fs, self.path)

    def __repr__(self) -> str:
        return f"StoreFile({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoreFile) and str(other) == str(self)

    def __hash__(self) -> int:
        return hash(str(self))

    def __lt__(self, other: "StoreFile") -> bool:
        return self.path < other.path

    def stat(self) -> _Stat:
        if self.size < 0:
            info = self._info()
            self.size, self.mtime_ns = int(info.size or 0), int(info.mtime_ns or 0)
        return _Stat(self.size, self.mtime_ns)

    def _info(self) -> Any:
        import pyarrow.fs as pafs

        try:
            info = self.fs.get_file_info(self.path)
        except Exception as exc:  # noqa: BLE001 - the store's own, said in one line
            raise error(str(self), exc) from None
        if info.type == pafs.FileType.NotFound:
            raise StorageError(f"{self}: no such file")
        return info

    def open_random(self) -> Any:
        """A random-access pyarrow file (Parquet)."""
        try:
            return self.fs.open_input_file(self.path)
        except Exception as exc:  # noqa: BLE001
            raise error(str(self), exc, "opening") from None

    def open_binary(self) -> Any:
        """A binary stream, decompressed by the name's suffix (``.gz``, ``.bz2``, ``.xz``)."""
        try:
            raw = self.fs.open_input_stream(self.path)
        except Exception as exc:  # noqa: BLE001
            raise error(str(self), exc, "opening") from None
        lower = self.name.lower()
        if lower.endswith(".gz"):
            return _Owning(gzip.GzipFile(fileobj=raw, mode="rb"), raw)
        if lower.endswith(".bz2"):
            return _Owning(bz2.BZ2File(raw, "rb"), raw)
        if lower.endswith(".xz"):
            return _Owning(lzma.LZMAFile(raw, "rb"), raw)
        # Buffered: the careful CSV reader iterates lines, which pyarrow's stream does not.
        return io.BufferedReader(raw, buffer_size=1 << 20)

    def read_bytes(self) -> bytes:
        with self.open_binary() as f:
            return f.read()


class _Owning(io.BufferedIOBase):
    """A decompressing stream that closes the store's stream under it too."""

    def __init__(self, inner: Any, raw: Any):
        self._inner, self._raw = inner, raw

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._inner.read(-1 if size is None else size)

    def read1(self, size: int = -1) -> bytes:
        return self._inner.read1(size)

    def readinto(self, b: Any) -> int:
        return self._inner.readinto(b)

    def readline(self, size: int | None = -1) -> bytes:
        return self._inner.readline(-1 if size is None else size)

    def __iter__(self):
        return iter(self._inner)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._raw.close()
            super().close()


def entry(target: str | os.PathLike, filesystem: Any = None,
          storage_options: Mapping[str, Any] | None = None) -> tuple[StoreFile | None, list[StoreFile]]:
    """What a URL names: ``(file, [])`` for a file, ``(None, files)`` for a prefix (its
    files, not those of deeper prefixes, sorted by name); a StorageError naming the URL when
    it names nothing or the store cannot be read."""
    import pyarrow.fs as pafs

    fs, path = resolve(target, filesystem, storage_options)
    url = url_of(fs, path) if filesystem is not None else os.fspath(target)
    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.File:
            return StoreFile(fs, path, int(info.size or 0), int(info.mtime_ns or 0)), []
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=False,
                                                   allow_not_found=True))
    except Exception as exc:  # noqa: BLE001 - the store's own, said in one line
        raise error(url, exc, "listing") from None
    files = sorted(StoreFile(fs, i.path, int(i.size or 0), int(i.mtime_ns or 0))
                   for i in infos if i.type == pafs.FileType.File)
    if not files and info.type == pafs.FileType.NotFound and not infos:
        _check_bucket(fs, path, url)
        raise StorageError(f"{url}: no such file or prefix")
    return None, files


def _check_bucket(fs: Any, path: str, url: str) -> None:
    """Say "no such bucket" rather than "no such prefix" when the bucket is missing."""
    import pyarrow.fs as pafs

    bucket = path.split("/", 1)[0]
    try:
        if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise StorageError(f"{url}: no such bucket ({bucket})")
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise error(url, exc) from None


def list_files(fs: Any, prefix: str, recursive: bool = True) -> list[str]:
    """The paths of the files under ``prefix`` (none when it does not exist)."""
    import pyarrow.fs as pafs

    try:
        infos = fs.get_file_info(pafs.FileSelector(prefix, recursive=recursive,
                                                   allow_not_found=True))
    except Exception as exc:  # noqa: BLE001
        raise error(url_of(fs, prefix), exc, "listing") from None
    return sorted(i.path for i in infos if i.type == pafs.FileType.File)


def write_bytes(fs: Any, path: str, data: bytes) -> None:
    """One object, written whole (a store shows it only when complete)."""
    try:
        with fs.open_output_stream(path) as f:
            f.write(data)
    except Exception as exc:  # noqa: BLE001
        raise error(url_of(fs, path), exc, "writing") from None


def read_bytes(fs: Any, path: str) -> bytes:
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except Exception as exc:  # noqa: BLE001
        raise error(url_of(fs, path), exc, "reading") from None


def delete(fs: Any, paths: Iterable[str]) -> None:
    """Delete files (those already gone are no error)."""
    import pyarrow.fs as pafs

    for path in paths:
        try:
            fs.delete_file(path)
        except FileNotFoundError:
            pass
        except Exception as exc:  # noqa: BLE001
            if fs.get_file_info(path).type != pafs.FileType.NotFound:
                raise error(url_of(fs, path), exc, "deleting") from None


def exists(fs: Any, path: str) -> bool:
    import pyarrow.fs as pafs

    try:
        return bool(fs.get_file_info(path).type != pafs.FileType.NotFound)
    except Exception as exc:  # noqa: BLE001
        raise error(url_of(fs, path), exc) from None


# -- the commit protocol of an export ----------------------------------------------------------


def new_run_id() -> str:
    """A run's id: sorts by start time (UTC), unique across clients."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def run_prefix(root: str, run: str) -> str:
    return f"{root.rstrip('/')}/{RUNS}/{run}"


def commit(fs: Any, root: str, run: str, manifest: Mapping[str, Any]) -> str:
    """Commit a run whose files are all written: its commit record (the manifest, the run and
    the list of its files, relative to ``root``) is written last, as one object."""
    prefix = run_prefix(root, run)
    files = [p[len(root.rstrip('/')) + 1:] for p in list_files(fs, prefix)]
    record = {**dict(manifest), "run": run, "root": f"{RUNS}/{run}", "files": files}
    path = f"{root.rstrip('/')}/{COMMITS}/{run}.json"
    write_bytes(fs, path, json.dumps(record, indent=1).encode("utf-8"))
    return path


def committed(fs: Any, root: str) -> list[str]:
    """The committed runs of an export, oldest first."""
    names = list_files(fs, f"{root.rstrip('/')}/{COMMITS}", recursive=False)
    return sorted(posixpath.basename(p)[:-5] for p in names if p.endswith(".json"))


def latest(fs: Any, root: str, url: str | None = None) -> dict[str, Any]:
    """The commit record of the latest run of an export on a store; a StorageError naming
    the URL when there is none."""
    where = url or url_of(fs, root)
    try:
        runs = committed(fs, root)
    except StorageError as exc:
        raise exc.at(where) from None
    if not runs:
        _check_bucket(fs, root, where)
        raise StorageError(f"{where}: no committed export (no {COMMITS}/*.json)")
    raw = read_bytes(fs, f"{root.rstrip('/')}/{COMMITS}/{runs[-1]}.json")
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise StorageError(f"{url or url_of(fs, root)}: commit record {runs[-1]} is not "
                           f"JSON ({exc})") from None
    return dict(doc)


def uncommitted(fs: Any, root: str) -> dict[str, list[str]]:
    """The files of runs that never committed (failed or killed), by run: what to clean up."""
    done = set(committed(fs, root))
    out: dict[str, list[str]] = {}
    prefix = f"{root.rstrip('/')}/{RUNS}/"
    for path in list_files(fs, prefix.rstrip("/")):
        run = path[len(prefix):].split("/", 1)[0]
        if run not in done:
            out.setdefault(run, []).append(path)
    return out


def remove_uncommitted(fs: Any, root: str, keep: Iterable[str] = ()) -> list[str]:
    """Delete the files of runs that never committed (except the runs in ``keep``)."""
    gone = []
    keep = set(keep)
    for run, files in uncommitted(fs, root).items():
        if run in keep:
            continue
        delete(fs, files)
        gone.extend(files)
    return gone


def download_export(target: str, dest: str | os.PathLike | None = None,
                    filesystem: Any = None,
                    storage_options: Mapping[str, Any] | None = None) -> str:
    """The latest committed export at a URL, copied into a local folder laid out as an
    export on disk (``manifest.json``, ``sessions/``, ``bars/``, ``gaps/``): what
    ``validate``, ``report``, ``check`` and ``diff`` read.  Only the files that the commit
    record lists are copied.  Returns the folder (a new temporary one without ``dest``)."""
    fs, root = resolve(target, filesystem, storage_options)
    record = latest(fs, root, str(target))
    dest = dest or tempfile.mkdtemp(prefix="sessiondata-store-")
    base = root.rstrip("/") + "/" + str(record["root"]).strip("/") + "/"
    for rel in record.get("files", []):
        src = f"{root.rstrip('/')}/{rel}"
        if not src.startswith(base):
            continue
        local = os.path.join(os.fspath(dest), *src[len(base):].split("/"))
        os.makedirs(os.path.dirname(local), exist_ok=True)
        with open(local, "wb") as f:
            f.write(read_bytes(fs, src))
    return os.fspath(dest)


def files_of_latest(target: str, filesystem: Any = None,
                    storage_options: Mapping[str, Any] | None = None,
                    what: str = "bars") -> list[str]:
    """The URLs (``s3://...``) of the files of the latest export's ``what`` (``bars``,
    ``gaps``, ``sessions``): what a polars or pyarrow reader is given."""
    fs, root = resolve(target, filesystem, storage_options)
    record = latest(fs, root, str(target))
    prefix = f"{record['root']}/{what}/"
    return [url_of(fs, f"{root.rstrip('/')}/{rel}") for rel in record.get("files", [])
            if rel.startswith(prefix)]
