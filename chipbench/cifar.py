"""CIFAR-10 (python version): fetch, verify, extract and load the pickled batches.

Every failure a user can cause or fix (missing file, bad URL, network down, corrupt
archive, wrong md5) raises :class:`chipbench.errors.UserError` with a one-line message
naming the problem and the fix.  Files are always written to a temporary name next to
their destination and renamed into place, so an interrupted or failed step never leaves
a partial file behind.

The batches are Python-2 era pickles: a dict whose keys load as ``b'data'``,
``b'labels'`` with ``encoding='bytes'`` or as ``'data'``, ``'labels'`` with
``encoding='latin1'``; ``data`` is a uint8 array of N rows of 3072 values (R plane,
G plane, B plane, each 32x32 row-major).  :func:`load_batch` accepts both key styles and
unpickles with a restricted unpickler that only resolves the numpy names an array needs,
so a tampered file cannot run code.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import http.client
import os
import pickle
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from chipbench.errors import UserError
from chipbench.files import publish

ARCHIVE_DIR = "cifar-10-batches-py"
"""Folder inside the archive that holds the batches."""

_CHUNK = 1 << 20
_FIX_SOURCE = "set dataset.url in config.yaml to an existing file, a file:// URL or an http(s) URL"


def _one_line(obj: object) -> str:
    """``str(obj)`` with all whitespace runs (newlines included) collapsed to one space."""
    return " ".join(str(obj).split()) or type(obj).__name__


def _remove(path: Path | None) -> None:
    if path is not None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _temp_path(dest: Path) -> Path:
    """Create an empty temporary file next to ``dest`` and return its path."""
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    return Path(name)


# --------------------------------------------------------------------------- fetch


def fetch(source: str, dest: Path, *, timeout: float = 60.0) -> None:
    """Copy or download ``source`` to ``dest`` atomically.

    ``source`` is an ``http://``/``https://`` URL, a ``file://`` URL or a local path.
    The bytes go to a temporary file in ``dest``'s folder which is renamed to ``dest``
    only when complete; on any failure the temporary file is removed and ``dest`` is
    left as it was.
    """
    dest = Path(dest)
    source = str(source)
    parts = urllib.parse.urlsplit(source)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        local = None
    elif scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise UserError(
                f"file URL {source} names host {parts.netloc!r}: use file:///absolute/path "
                f"(no host) or a plain path in dataset.url"
            )
        local = Path(urllib.request.url2pathname(parts.path))
    elif scheme == "" or len(scheme) == 1:  # a plain path (len 1: a Windows drive letter)
        local = Path(source)
    else:
        raise UserError(f"dataset source {source} has unsupported scheme {parts.scheme!r}: {_FIX_SOURCE}")

    if local is not None:
        if not local.exists():
            raise UserError(f"dataset archive {local} does not exist: {_FIX_SOURCE}")
        if not local.is_file():
            raise UserError(f"dataset archive {local} is not a regular file: {_FIX_SOURCE}")

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create folder {dest.parent} ({_one_line(err)}): check the path and its permissions") from None

    tmp = _temp_path_or_error(dest)
    try:
        if local is not None:
            _copy_local(local, tmp)
        else:
            _download(source, tmp, timeout)
        publish(tmp, dest)
    except BaseException:
        _remove(tmp)
        raise


def _temp_path_or_error(dest: Path) -> Path:
    try:
        return _temp_path(dest)
    except OSError as err:
        raise UserError(f"cannot write to folder {dest.parent} ({_one_line(err)}): check its permissions and free space") from None


def _copy_local(src: Path, tmp: Path) -> None:
    try:
        fin = open(src, "rb")
    except OSError as err:
        raise UserError(f"cannot read dataset archive {src} ({_one_line(err)}): check its permissions or {_FIX_SOURCE}") from None
    with fin, open(tmp, "wb") as fout:
        while True:
            try:
                block = fin.read(_CHUNK)
            except OSError as err:
                raise UserError(f"cannot read dataset archive {src} ({_one_line(err)}): check the file or {_FIX_SOURCE}") from None
            if not block:
                break
            fout.write(block)


def _download(url: str, tmp: Path, timeout: float) -> None:
    fix = ("check the network connection and the URL, or download the archive yourself "
           "and set dataset.url in config.yaml to its local path")
    received = 0
    expected: int | None = None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as fout:
            length = response.headers.get("Content-Length") if response.headers else None
            if length is not None and length.strip().isdigit():
                expected = int(length)
            while True:
                block = response.read(_CHUNK)
                if not block:
                    break
                fout.write(block)
                received += len(block)
    except urllib.error.HTTPError as err:
        raise UserError(f"could not download {url}: HTTP {err.code} {_one_line(err.reason)}: {fix}") from None
    except urllib.error.URLError as err:
        raise UserError(f"could not download {url}: {_one_line(err.reason)}: {fix}") from None
    except (OSError, http.client.HTTPException, ValueError) as err:
        raise UserError(f"could not download {url}: {_one_line(err)}: {fix}") from None
    if expected is not None and received != expected:
        raise UserError(f"could not download {url}: connection closed after {received} of {expected} bytes: {fix}")


# --------------------------------------------------------------------------- md5


def md5sum(path: Path) -> str:
    """Hex md5 digest of a file, read in 1 MiB blocks."""
    path = Path(path)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with open(path, "rb") as fin:
            for block in iter(lambda: fin.read(_CHUNK), b""):
                digest.update(block)
    except FileNotFoundError:
        raise UserError(f"dataset archive {path} does not exist: {_FIX_SOURCE}") from None
    except OSError as err:
        raise UserError(f"cannot read dataset archive {path} ({_one_line(err)}): check the file and its permissions") from None
    return digest.hexdigest()


def verify_md5(path: Path, expected: str, source: str | None = None) -> None:
    """Raise :class:`UserError` unless the md5 of ``path`` is ``expected`` (hex, any case).

    ``source`` is where ``path`` was fetched from (dataset.url); the message names it, since
    a failed download job leaves no archive behind to look at.
    """
    path = Path(path)
    source = source or str(path)
    want = str(expected).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{32}", want):
        raise UserError(
            f"dataset.md5 {expected!r} is not an md5 digest (32 hexadecimal characters): fix dataset.md5 in config.yaml"
        )
    got = md5sum(path)
    if got != want:
        raise UserError(
            f"dataset archive {source} has md5 {got} but config says {want}: if it is the "
            f"archive you mean, set dataset.md5: {got}; otherwise point dataset.url at a copy "
            f"whose md5 is {want}"
        )


# --------------------------------------------------------------------------- extract


class CorruptArchive(UserError):
    """The archive is truncated or corrupt; ``detail`` says how, without the fix."""

    def __init__(self, archive: Path, detail: str, fix: str) -> None:
        super().__init__(f"dataset archive {archive} {detail}: {fix}")
        self.detail = detail


def extract(archive: Path, out_dir: Path, members=("test_batch", "data_batch_1")) -> dict[str, Path]:
    """Extract ``cifar-10-batches-py/<member>`` for each member to ``out_dir/<member>``.

    Only regular-file entries with exactly those names are read; every other entry is
    skipped, so nothing can be written outside ``out_dir``.  The whole archive is read to
    its end (gzip CRC and length included) before anything is renamed into place: a
    truncated or corrupt archive, or a missing member, raises :class:`UserError` and
    leaves no new file in ``out_dir``.  Returns ``{member: path}``.
    """
    archive = Path(archive)
    out_dir = Path(out_dir)
    members = tuple(members)
    for member in members:
        if (not isinstance(member, str) or member in ("", ".", "..")
                or "/" in member or "\\" in member or "\0" in member):
            raise ValueError(f"member name {member!r} must be a plain file name")
    if len(set(members)) != len(members):
        raise ValueError(f"duplicate member names in {members!r}")
    wanted = {f"{ARCHIVE_DIR}/{m}": m for m in members}
    fix_corrupt = f"delete {archive} and rerun to fetch it again"

    if not archive.is_file():
        raise UserError(f"dataset archive {archive} does not exist: {_FIX_SOURCE}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create folder {out_dir} ({_one_line(err)}): check the path and its permissions") from None

    temps: dict[str, Path] = {}
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                for info in tar:
                    name = info.name
                    while name.startswith("./"):
                        name = name[2:]
                    member = wanted.get(name)
                    if member is None:
                        continue
                    if not info.isreg():
                        raise CorruptArchive(
                            archive, f"has entry {info.name}, which is not a regular file (link "
                            "or folder): it is not the CIFAR-10 python version", fix_corrupt,
                        )
                    src = tar.extractfile(info)
                    if member not in temps:  # a repeated entry overwrites, as tar does
                        temps[member] = _temp_path(out_dir / member)
                    with src, open(temps[member], "wb") as fout:
                        shutil.copyfileobj(src, fout, _CHUNK)
                # Read to the end of the gzip stream so its CRC and length are checked.
                while tar.fileobj.read(_CHUNK):
                    pass
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
            raise CorruptArchive(
                archive, f"is truncated or corrupt ({_one_line(err)})", fix_corrupt
            ) from None
        except OSError as err:
            if isinstance(err.__cause__ or err.__context__, (EOFError, zlib.error)):
                raise CorruptArchive(
                    archive, f"is truncated or corrupt ({_one_line(err)})", fix_corrupt
                ) from None
            raise UserError(f"cannot extract {archive} to {out_dir} ({_one_line(err)}): check free space and permissions") from None

        missing = [m for m in members if m not in temps]
        if missing:
            names = ", ".join(f"{ARCHIVE_DIR}/{m}" for m in missing)
            raise CorruptArchive(
                archive, f"has no {names}: it is not the CIFAR-10 python version",
                "set dataset.url to cifar-10-python.tar.gz and dataset.md5 to its md5",
            )
        result = {}
        for member in members:
            final = out_dir / member
            publish(temps.pop(member), final)
            result[member] = final
        return result
    finally:
        for tmp in temps.values():
            _remove(tmp)


# --------------------------------------------------------------------------- load


def _numpy_globals() -> dict[tuple[str, str], object]:
    arr = np.zeros(1, np.uint8)
    reconstruct = arr.__reduce__()[0]
    frombuffer = arr.__reduce_ex__(5)[0]
    scalar = np.int64(0).__reduce__()[0]
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # protocol-2 pickles of bytes written by Python 3
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = frombuffer
    return allowed


class _BatchUnpickler(pickle.Unpickler):
    """Resolves only the few names a pickled numpy array needs."""

    _allowed = _numpy_globals()

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def load_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Load a CIFAR-10 python batch: ``(images uint8 (N,3,32,32), labels int64 (N,))``.

    Keys may be bytes (``b'data'``, as with ``encoding='bytes'``) or str (as with
    ``encoding='latin1'``).  Row ``k`` of ``data`` holds the R plane, then G, then B, each
    32x32 row-major, so ``images[k, c, y, x] = data[k, c*1024 + y*32 + x]``.
    """
    path = Path(path)
    fix = f"delete {path} and the archive it came from and rerun, or set dataset.url to the CIFAR-10 python version"

    def bad(detail: str) -> UserError:
        return UserError(f"{path} is not a CIFAR-10 python batch ({_one_line(detail)}): {fix}")

    try:
        with open(path, "rb") as fin:
            obj = _BatchUnpickler(fin, encoding="bytes").load()
    except FileNotFoundError:
        raise UserError(f"CIFAR-10 batch {path} does not exist: rerun the workflow so it extracts it again") from None
    except OSError as err:
        raise UserError(f"cannot read CIFAR-10 batch {path} ({_one_line(err)}): check the file and its permissions") from None
    except Exception as err:  # unpickling raises many types on bad input
        raise bad(f"unpickling failed: {err}") from None

    if not isinstance(obj, dict):
        raise bad(f"top level is {type(obj).__name__}, not dict")
    content = {}
    for key, value in obj.items():
        if isinstance(key, bytes):
            key = key.decode("latin1")
        content[key] = value
    for key in ("data", "labels"):
        if key not in content:
            raise bad(f"no {key!r} entry")

    data = content["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        desc = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise bad(f"'data' is {desc}, expected uint8 array of shape (N, 3072)")
    n = data.shape[0]
    try:
        labels = np.asarray(content["labels"])
    except Exception as err:
        raise bad(f"'labels' cannot be read as an array: {err}") from None
    if labels.ndim != 1 or labels.shape[0] != n or not (labels.size == 0 or np.issubdtype(labels.dtype, np.integer)):
        raise bad(f"'labels' has shape {labels.shape} and dtype {labels.dtype}, expected {n} integers")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise bad(f"'labels' range from {labels.min()} to {labels.max()}, expected 0..9")

    images = data.reshape(n, 3, 32, 32)
    if not images.flags.writeable or not images.flags.c_contiguous:
        images = np.array(images, dtype=np.uint8, order="C", copy=True)
    return images, labels
