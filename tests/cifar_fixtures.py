"""A tiny CIFAR-10-format archive for the tests and the CI run: deterministic, seeded, in the
same format as the real ``cifar-10-python.tar.gz`` (Python-2 era pickles by default)."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

from chipbench.cifar import ARCHIVE_DIR

#: The label names of the real archive's batches.meta, in label order.
LABEL_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)


class Py2Pickler:
    """Writes protocol-2 pickles as Python 2's cPickle wrote the real CIFAR-10 batches.

    ``str`` values become Python-2 byte strings (``SHORT_BINSTRING``/``BINSTRING``), which
    load as ``bytes`` with ``encoding='bytes'`` and as ``str`` with ``encoding='latin1'``;
    a uint8 array is written the way numpy 1.x on Python 2 reduced it
    (``numpy.core.multiarray._reconstruct`` with its raw buffer as a byte string).
    Supports exactly the types the batches hold: dict, list, str, int, 2-D uint8 array.
    """

    def __init__(self) -> None:
        self.out = io.BytesIO()

    def dumps(self, obj) -> bytes:
        self.out.write(b"\x80\x02")  # PROTO 2
        self._save(obj)
        self.out.write(b".")  # STOP
        return self.out.getvalue()

    def _w(self, data: bytes) -> None:
        self.out.write(data)

    def _str(self, raw: bytes) -> None:
        if len(raw) < 256:
            self._w(b"U" + bytes([len(raw)]) + raw)  # SHORT_BINSTRING
        else:
            self._w(b"T" + struct.pack("<i", len(raw)) + raw)  # BINSTRING

    def _int(self, value: int) -> None:
        if 0 <= value < 256:
            self._w(b"K" + bytes([value]))  # BININT1
        elif 0 <= value < 65536:
            self._w(b"M" + struct.pack("<H", value))  # BININT2
        else:
            self._w(b"J" + struct.pack("<i", value))  # BININT

    def _global(self, module: str, name: str) -> None:
        self._w(b"c" + module.encode() + b"\n" + name.encode() + b"\n")  # GLOBAL

    def _save(self, obj) -> None:
        if isinstance(obj, bool) or obj is None:
            raise TypeError(f"unsupported type {type(obj).__name__}")
        if isinstance(obj, dict):
            self._w(b"}")  # EMPTY_DICT
            if obj:
                self._w(b"(")  # MARK
                for key, value in obj.items():
                    self._save(key)
                    self._save(value)
                self._w(b"u")  # SETITEMS
        elif isinstance(obj, list):
            self._w(b"]")  # EMPTY_LIST
            if obj:
                self._w(b"(")
                for item in obj:
                    self._save(item)
                self._w(b"e")  # APPENDS
        elif isinstance(obj, str):
            self._str(obj.encode("latin1"))
        elif isinstance(obj, int):
            self._int(obj)
        elif isinstance(obj, np.ndarray) and obj.dtype == np.uint8 and obj.ndim == 2:
            self._global("numpy.core.multiarray", "_reconstruct")
            self._global("numpy", "ndarray")
            self._int(0)
            self._w(b"\x85")  # TUPLE1
            self._str(b"b")
            self._w(b"\x87R")  # TUPLE3, REDUCE
            self._w(b"(")  # state: (1, shape, dtype, is_fortran, raw)
            self._int(1)
            self._int(obj.shape[0])
            self._int(obj.shape[1])
            self._w(b"\x86")  # TUPLE2
            self._global("numpy", "dtype")
            self._str(b"u1")
            self._int(0)
            self._int(1)
            self._w(b"\x87R")  # dtype('u1', 0, 1)
            self._w(b"(")  # dtype state (3, '|', None, None, None, -1, -1, 0)
            self._int(3)
            self._str(b"|")
            self._w(b"NNN")
            self._w(b"J" + struct.pack("<i", -1))
            self._w(b"J" + struct.pack("<i", -1))
            self._int(0)
            self._w(b"tb")  # TUPLE, BUILD
            self._w(b"\x89")  # NEWFALSE
            self._str(np.ascontiguousarray(obj).tobytes())
            self._w(b"tb")
        else:
            raise TypeError(f"unsupported type {type(obj).__name__}")


def tiny_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """``n`` images with a soft coloured blob on a darker background; the blob's colour
    (and size range) depends on the label, so a classifier can learn them.

    Uses only uniform draws and + - * / so the pixels do not depend on the platform's
    transcendental functions.
    """
    palette = np.array([
        [230, 40, 40], [40, 200, 40], [50, 70, 230], [230, 220, 40], [220, 50, 220],
        [40, 220, 220], [240, 140, 30], [140, 60, 200], [160, 160, 160], [120, 70, 20],
    ], dtype=np.float64)
    labels = rng.permutation(np.arange(n) % 10)
    centre = rng.uniform(9.0, 23.0, size=(n, 2))
    radius = 4.0 + 0.4 * labels + rng.uniform(0.0, 3.0, size=n)
    background = rng.uniform(0.0, 90.0, size=(n, 3))
    colour = palette[labels] + rng.uniform(-25.0, 25.0, size=(n, 3))
    noise = rng.uniform(-12.0, 12.0, size=(n, 3, 32, 32))

    grid = np.arange(32, dtype=np.float64)
    dy = (grid[None, :] - centre[:, 0:1]) / radius[:, None]  # (n, 32)
    dx = (grid[None, :] - centre[:, 1:2]) / radius[:, None]
    d2 = dy[:, :, None] ** 2 + dx[:, None, :] ** 2  # (n, 32, 32)
    blob = 1.0 / (1.0 + d2 * d2)  # smooth bump, 1 at the centre
    img = (background[:, :, None, None] * (1.0 - blob[:, None])
           + colour[:, :, None, None] * blob[:, None] + noise)
    img = np.clip(np.floor(img + 0.5), 0, 255).astype(np.uint8)
    return img, [int(v) for v in labels]


def write_tiny_archive(path: Path, n_test: int, n_train: int, seed: int, key_encoding: str = "bytes") -> None:
    """Write a small CIFAR-10-format ``cifar-10-python.tar.gz`` to ``path``.

    It holds ``cifar-10-batches-py/test_batch`` (``n_test`` images),
    ``data_batch_1`` (``n_train`` images) and ``batches.meta``.  ``key_encoding="bytes"``
    writes Python-2 style pickles like the real archive (keys load as ``b'data'`` with
    ``encoding='bytes'``); ``"str"`` (alias ``"latin1"``) writes Python-3 pickles with str
    keys.  Same arguments give byte-identical files (fixed tar mtime/uid/gid/mode, gzip
    mtime 0) for a given numpy/zlib.  Written atomically.
    """
    path = Path(path)
    if key_encoding not in ("bytes", "str", "latin1"):
        raise ValueError(f"key_encoding must be 'bytes' or 'str', not {key_encoding!r}")
    if n_test < 0 or n_train < 0:
        raise ValueError("image counts must be non-negative")
    if seed < 0:
        raise ValueError("seed must be non-negative")

    def dump(obj: dict) -> bytes:
        if key_encoding == "bytes":
            return Py2Pickler().dumps(obj)
        return pickle.dumps(obj, protocol=4)

    files = {}
    for index, (name, n, label) in enumerate([
        ("test_batch", n_test, "testing batch 1 of 1"),
        ("data_batch_1", n_train, "training batch 1 of 5"),
    ]):
        images, labels = tiny_images(n, np.random.default_rng([seed, index]))
        files[name] = dump({
            "batch_label": label,
            "labels": labels,
            "data": images.reshape(n, 3 * 32 * 32),
            "filenames": [f"tiny_{name}_{k:05d}.png" for k in range(n)],
        })
    files["batches.meta"] = dump({
        "num_cases_per_batch": max(n_test, n_train),
        "label_names": list(LABEL_NAMES),
        "num_vis": 3 * 32 * 32,
    })

    def info(name: str, size: int, is_dir: bool = False) -> tarfile.TarInfo:
        entry = tarfile.TarInfo(name)
        entry.size = size
        entry.mtime = 1234567890
        entry.uid = entry.gid = 0
        entry.uname = entry.gname = ""
        entry.mode = 0o755 if is_dir else 0o644
        entry.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
        return entry

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    try:
        with open(tmp, "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
                with tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                    tar.addfile(info(ARCHIVE_DIR, 0, is_dir=True))
                    for name, payload in files.items():
                        tar.addfile(info(f"{ARCHIVE_DIR}/{name}", len(payload)), io.BytesIO(payload))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

