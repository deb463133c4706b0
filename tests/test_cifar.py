"""Tests for chipbench.cifar (fetch, md5, extract, load_batch) and for the tiny archive the
tests build in the real archive's format (tests/cifar_fixtures.py)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from chipbench import cifar
from chipbench.errors import UserError
from tests.cifar_fixtures import Py2Pickler, tiny_images, write_tiny_archive


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "cifar-10-python.tar.gz"
    write_tiny_archive(path, n_test=60, n_train=40, seed=3)
    return path


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    return msg


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _tar_gz(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, payload in entries:
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def _reg(name: str, payload: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    return info, payload


def _hand_row() -> np.ndarray:
    """One CIFAR row: R plane all 1, G plane all 2, B plane all 3, plus markers."""
    row = np.concatenate([np.full(1024, 1), np.full(1024, 2), np.full(1024, 3)]).astype(np.uint8)
    row[0 * 1024 + 0 * 32 + 1] = 10  # R, y=0, x=1
    row[1 * 1024 + 2 * 32 + 0] = 20  # G, y=2, x=0
    row[2 * 1024 + 31 * 32 + 31] = 30  # B, y=31, x=31
    row[0 * 1024 + 5 * 32 + 7] = 40  # R, y=5, x=7
    return row


def _check_hand_images(images: np.ndarray, labels: np.ndarray) -> None:
    assert images.shape == (2, 3, 32, 32) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.tolist() == [7, 2]
    img = images[0]
    assert img[0, 0, 1] == 10 and img[1, 2, 0] == 20 and img[2, 31, 31] == 30 and img[0, 5, 7] == 40
    markers = np.zeros((3, 32, 32), bool)
    markers[0, 0, 1] = markers[1, 2, 0] = markers[2, 31, 31] = markers[0, 5, 7] = True
    expected_planes = np.array([1, 2, 3], np.uint8)[:, None, None] * np.ones((3, 32, 32), np.uint8)
    assert np.array_equal(img[~markers], expected_planes[~markers])
    assert np.array_equal(images[1], np.arange(3072, dtype=np.int64).astype(np.uint8).reshape(3, 32, 32))


def _hand_data() -> np.ndarray:
    return np.stack([_hand_row(), np.arange(3072).astype(np.uint8)])


# --------------------------------------------------------------------------- load_batch


@pytest.mark.parametrize("style", ["bytes-keys", "str-keys", "py2", "protocol2"])
def test_load_batch_pixel_layout_and_key_styles(tmp_path, style):
    data = _hand_data()
    if style == "bytes-keys":
        blob = pickle.dumps({b"data": data, b"labels": [7, 2]})
    elif style == "str-keys":
        blob = pickle.dumps({"data": data, "labels": [7, 2], "batch_label": "x"})
    elif style == "py2":
        blob = Py2Pickler().dumps({"data": data, "labels": [7, 2], "batch_label": "x"})
    else:  # Python 3 protocol 2: bytes go through _codecs.encode
        blob = pickle.dumps({b"data": data, b"labels": np.array([7, 2])}, protocol=2)
    path = tmp_path / "batch"
    path.write_bytes(blob)
    images, labels = cifar.load_batch(path)
    _check_hand_images(images, labels)
    assert images.flags.c_contiguous and images.flags.writeable


def test_py2_pickle_loads_like_the_real_archive(tmp_path):
    """The writer's 'bytes' mode mimics Python 2 pickles: keys are bytes with
    encoding='bytes' and str with encoding='latin1', and the array survives both."""
    data = _hand_data()
    blob = Py2Pickler().dumps({"data": data, "labels": [7, 2], "batch_label": "testing"})
    as_bytes = pickle.loads(blob, encoding="bytes")
    as_latin1 = pickle.loads(blob, encoding="latin1")
    assert set(as_bytes) == {b"data", b"labels", b"batch_label"}
    assert set(as_latin1) == {"data", "labels", "batch_label"}
    assert as_bytes[b"batch_label"] == b"testing" and as_latin1["batch_label"] == "testing"
    assert np.array_equal(as_bytes[b"data"], data) and np.array_equal(as_latin1["data"], data)
    assert as_bytes[b"data"].dtype == np.uint8


def test_both_archive_encodings_load_to_same_arrays(tmp_path):
    a = tmp_path / "a.tar.gz"
    b = tmp_path / "b.tar.gz"
    write_tiny_archive(a, n_test=30, n_train=20, seed=9, key_encoding="bytes")
    write_tiny_archive(b, n_test=30, n_train=20, seed=9, key_encoding="str")
    assert a.read_bytes() != b.read_bytes()
    ra = cifar.extract(a, tmp_path / "a")
    rb = cifar.extract(b, tmp_path / "b")
    for member in ("test_batch", "data_batch_1"):
        xa, ya = cifar.load_batch(ra[member])
        xb, yb = cifar.load_batch(rb[member])
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    raw_a = pickle.loads(ra["test_batch"].read_bytes(), encoding="bytes")
    raw_b = pickle.loads(rb["test_batch"].read_bytes(), encoding="bytes")
    assert b"data" in raw_a and b"labels" in raw_a
    assert "data" in raw_b and "labels" in raw_b


def test_load_batch_missing_file(tmp_path):
    with pytest.raises(UserError) as err:
        cifar.load_batch(tmp_path / "nope")
    assert str(tmp_path / "nope") in _one_line(err)


@pytest.mark.parametrize("content, fragment", [
    (b"this is not a pickle at all", "unpickling failed"),
    (b"", "unpickling failed"),
    (pickle.dumps([1, 2, 3]), "not dict"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}), "no 'labels'"),
    (pickle.dumps({"labels": [1]}), "no 'data'"),
    (pickle.dumps({"data": np.zeros((2, 3000), np.uint8), "labels": [1, 2]}), "shape (N, 3072)"),
    (pickle.dumps({"data": np.zeros((2, 3072), np.float32), "labels": [1, 2]}), "shape (N, 3072)"),
    (pickle.dumps({"data": [[0] * 3072], "labels": [1]}), "'data' is list"),
    (pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [1]}), "expected 2 integers"),
    (pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [1.5, 2.0]}), "expected 2 integers"),
    (pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [1, 10]}), "expected 0..9"),
    (pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [-1, 0]}), "expected 0..9"),
])
def test_load_batch_malformed(tmp_path, content, fragment):
    path = tmp_path / "batch"
    path.write_bytes(content)
    with pytest.raises(UserError) as err:
        cifar.load_batch(path)
    msg = _one_line(err)
    assert fragment in msg and str(path) in msg


class _Evil:
    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (str(self.target),))


def test_load_batch_refuses_arbitrary_code(tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({"data": _Evil(target), "labels": []}))
    with pytest.raises(UserError) as err:
        cifar.load_batch(path)
    assert "refusing to load" in _one_line(err)
    assert not target.exists()


def test_load_batch_empty_batch(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({"data": np.zeros((0, 3072), np.uint8), "labels": []}))
    images, labels = cifar.load_batch(path)
    assert images.shape == (0, 3, 32, 32) and labels.shape == (0,) and labels.dtype == np.int64


# --------------------------------------------------------------------------- write_tiny_archive


def test_tiny_archive_is_byte_identical_and_seeded(tmp_path):
    paths = [tmp_path / f"{k}.tar.gz" for k in range(3)]
    write_tiny_archive(paths[0], 20, 10, seed=1)
    write_tiny_archive(paths[1], 20, 10, seed=1)
    write_tiny_archive(paths[2], 20, 10, seed=2)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()
    raw = paths[0].read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[4:8] == b"\0\0\0\0"  # gzip mtime 0
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_tiny_archive_layout(tiny):
    with tarfile.open(tiny, "r:gz") as tar:
        infos = tar.getmembers()
    names = [i.name for i in infos]
    assert names == ["cifar-10-batches-py", "cifar-10-batches-py/test_batch",
                     "cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/batches.meta"]
    for info in infos:
        assert info.mtime == 1234567890 and info.uid == 0 and info.gid == 0
        assert info.uname == "" and info.gname == ""
    with tarfile.open(tiny, "r:gz") as tar:
        meta = pickle.load(tar.extractfile("cifar-10-batches-py/batches.meta"), encoding="latin1")
    assert meta["label_names"][0] == "airplane" and len(meta["label_names"]) == 10
    assert meta["num_vis"] == 3072


def test_tiny_archive_contents(tiny, tmp_path):
    out = cifar.extract(tiny, tmp_path)
    x_test, y_test = cifar.load_batch(out["test_batch"])
    x_train, y_train = cifar.load_batch(out["data_batch_1"])
    assert x_test.shape == (60, 3, 32, 32) and x_train.shape == (40, 3, 32, 32)
    # balanced labels 0..9
    assert np.bincount(y_test, minlength=10).tolist() == [6] * 10
    assert np.bincount(y_train, minlength=10).tolist() == [4] * 10
    # test and train differ; images are not constant and use a wide range
    assert not np.array_equal(x_test[:40], x_train)
    assert x_test.std() > 20 and x_test.min() < 30 and x_test.max() > 200


def test_tiny_images_are_learnable():
    """A nearest-class-mean rule on the brightest pixels' colour, fitted on the train
    images, classifies the test images far above chance (10 %)."""
    x_train, y_train = tiny_images(300, np.random.default_rng([0, 1]))
    x_test, y_test = tiny_images(200, np.random.default_rng([0, 0]))

    def features(x):
        return np.sort(x.reshape(len(x), 3, -1).astype(float), axis=2)[:, :, -100:].mean(axis=2)

    f_train, f_test = features(x_train), features(x_test)
    y_train, y_test = np.array(y_train), np.array(y_test)
    centroids = np.stack([f_train[y_train == k].mean(axis=0) for k in range(10)])
    pred = ((f_test[:, None] - centroids[None]) ** 2).sum(axis=2).argmin(axis=1)
    assert (pred == y_test).mean() > 0.8


def test_tiny_archive_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        write_tiny_archive(tmp_path / "x.tar.gz", 1, 1, 0, key_encoding="utf8")
    with pytest.raises(ValueError):
        write_tiny_archive(tmp_path / "x.tar.gz", -1, 1, 0)
    assert _files(tmp_path) == []


# --------------------------------------------------------------------------- md5


def test_md5sum_and_verify(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"hello")
    assert cifar.md5sum(path) == "5d41402abc4b2a76b9719d911017c592"
    big = tmp_path / "big"
    payload = os.urandom(3 * (1 << 20) + 17)
    big.write_bytes(payload)
    assert cifar.md5sum(big) == hashlib.md5(payload).hexdigest()
    cifar.verify_md5(path, "5d41402abc4b2a76b9719d911017c592")
    cifar.verify_md5(path, " 5D41402ABC4B2A76B9719D911017C592\n")


def test_verify_md5_mismatch_message(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(b"hello")
    with pytest.raises(UserError) as err:
        cifar.verify_md5(path, "c58f30108f718f92721af3b95e74349a")
    assert _one_line(err) == (
        f"dataset archive {path} has md5 5d41402abc4b2a76b9719d911017c592 but config says "
        f"c58f30108f718f92721af3b95e74349a: if it is the archive you mean, set dataset.md5: "
        f"5d41402abc4b2a76b9719d911017c592; otherwise point dataset.url at a copy whose md5 is "
        f"c58f30108f718f92721af3b95e74349a"
    )


@pytest.mark.parametrize("bad", ["", "abc", "z" * 32, "5d41402abc4b2a76b9719d911017c59"])
def test_verify_md5_malformed_expected(tmp_path, bad):
    path = tmp_path / "f"
    path.write_bytes(b"hello")
    with pytest.raises(UserError) as err:
        cifar.verify_md5(path, bad)
    assert "dataset.md5" in _one_line(err)


def test_md5_missing_file(tmp_path):
    with pytest.raises(UserError) as err:
        cifar.md5sum(tmp_path / "nope")
    assert str(tmp_path / "nope") in _one_line(err)
    with pytest.raises(UserError):
        cifar.verify_md5(tmp_path / "nope", "5d41402abc4b2a76b9719d911017c592")


# --------------------------------------------------------------------------- fetch


def test_fetch_plain_path_and_file_url(tiny, tmp_path):
    dest1 = tmp_path / "a" / "b" / "cifar-10-python.tar.gz"
    cifar.fetch(str(tiny), dest1)
    assert dest1.read_bytes() == tiny.read_bytes()
    dest2 = tmp_path / "c.tar.gz"
    cifar.fetch(tiny.as_uri(), dest2)
    assert dest2.read_bytes() == tiny.read_bytes()
    dest3 = tmp_path / "d.tar.gz"
    cifar.fetch("file://localhost" + str(tiny), dest3)
    assert dest3.read_bytes() == tiny.read_bytes()
    assert _files(tmp_path) == ["a", "c.tar.gz", "d.tar.gz"]
    assert _files(dest1.parent) == ["cifar-10-python.tar.gz"]


def test_fetch_overwrites_existing(tiny, tmp_path):
    dest = tmp_path / "x.tar.gz"
    dest.write_bytes(b"old")
    cifar.fetch(str(tiny), dest)
    assert dest.read_bytes() == tiny.read_bytes()
    assert _files(tmp_path) == ["x.tar.gz"]


@pytest.mark.parametrize("as_url", [False, True])
def test_fetch_missing_local_file(tmp_path, as_url):
    missing = tmp_path / "x" / "y.tar.gz"
    dest = tmp_path / "out" / "cifar.tar.gz"
    with pytest.raises(UserError) as err:
        cifar.fetch(missing.as_uri() if as_url else str(missing), dest)
    assert _one_line(err) == (
        f"dataset archive {missing} does not exist: set dataset.url in config.yaml to an "
        f"existing file, a file:// URL or an http(s) URL"
    )
    assert _files(tmp_path / "out") == []


def test_fetch_directory_and_bad_schemes(tmp_path):
    with pytest.raises(UserError) as err:
        cifar.fetch(str(tmp_path), tmp_path / "out" / "f")
    assert "not a regular file" in _one_line(err)
    with pytest.raises(UserError) as err:
        cifar.fetch("ftp://example.org/cifar.tar.gz", tmp_path / "f")
    assert "unsupported scheme" in _one_line(err)
    with pytest.raises(UserError) as err:
        cifar.fetch("file://otherhost/data/cifar.tar.gz", tmp_path / "f")
    assert "otherhost" in _one_line(err)
    assert not (tmp_path / "f").exists()


class _FakeResponse:
    def __init__(self, chunks, length=None, fail_after=None):
        self.chunks = list(chunks)
        self.headers = {} if length is None else {"Content-Length": str(length)}
        self.fail_after = fail_after
        self.reads = 0

    def read(self, n=-1):
        if self.fail_after is not None and self.reads >= self.fail_after:
            raise ConnectionResetError("Connection reset by peer")
        self.reads += 1
        return self.chunks.pop(0) if self.chunks else b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _patch_urlopen(monkeypatch, behaviour):
    calls = []

    def fake_urlopen(url, timeout=None):
        calls.append((url, timeout))
        if isinstance(behaviour, BaseException):
            raise behaviour
        return behaviour

    monkeypatch.setattr(cifar.urllib.request, "urlopen", fake_urlopen)
    return calls


def test_fetch_http_success(monkeypatch, tmp_path):
    calls = _patch_urlopen(monkeypatch, _FakeResponse([b"abc", b"def"], length=6))
    dest = tmp_path / "d" / "cifar.tar.gz"
    cifar.fetch("https://example.org/cifar.tar.gz", dest, timeout=5)
    assert dest.read_bytes() == b"abcdef"
    assert calls == [("https://example.org/cifar.tar.gz", 5)]
    assert _files(dest.parent) == ["cifar.tar.gz"]


@pytest.mark.parametrize("behaviour, fragment", [
    (urllib.error.URLError("[Errno -2] Name or service\nnot known"), "Name or service not known"),
    (urllib.error.HTTPError("http://x", 404, "Not Found", {}, None), "HTTP 404 Not Found"),
    (TimeoutError("timed out"), "timed out"),
    (_FakeResponse([b"abc"], length=10), "after 3 of 10 bytes"),
    (_FakeResponse([b"abc", b"def"], fail_after=1), "Connection reset by peer"),
])
def test_fetch_http_failure_leaves_nothing(monkeypatch, tmp_path, behaviour, fragment):
    _patch_urlopen(monkeypatch, behaviour)
    dest = tmp_path / "cifar.tar.gz"
    dest.write_bytes(b"previous")
    with pytest.raises(UserError) as err:
        cifar.fetch("http://example.org/cifar.tar.gz", dest)
    msg = _one_line(err)
    assert msg.startswith("could not download http://example.org/cifar.tar.gz") and fragment in msg
    assert "dataset.url" in msg
    assert _files(tmp_path) == ["cifar.tar.gz"]  # no temporary file left
    assert dest.read_bytes() == b"previous"  # and the old file untouched


def test_fetch_interrupted_leaves_nothing(monkeypatch, tmp_path):
    class Boom(_FakeResponse):
        def read(self, n=-1):
            raise KeyboardInterrupt

    _patch_urlopen(monkeypatch, Boom([]))
    with pytest.raises(KeyboardInterrupt):
        cifar.fetch("http://example.org/cifar.tar.gz", tmp_path / "c.tar.gz")
    assert _files(tmp_path) == []


# --------------------------------------------------------------------------- extract


def test_extract_writes_only_requested_members(tiny, tmp_path):
    out = tmp_path / "out"
    result = cifar.extract(tiny, out)
    assert result == {"test_batch": out / "test_batch", "data_batch_1": out / "data_batch_1"}
    assert _files(out) == ["data_batch_1", "test_batch"]
    with tarfile.open(tiny, "r:gz") as tar:
        for member, path in result.items():
            assert path.read_bytes() == tar.extractfile(f"cifar-10-batches-py/{member}").read()
    meta = cifar.extract(tiny, tmp_path / "meta", members=("batches.meta",))
    assert list(meta) == ["batches.meta"] and _files(tmp_path / "meta") == ["batches.meta"]


@pytest.mark.parametrize("keep", [0.5, 0.1, 0.9, -10, -4])
def test_extract_truncated_archive(tiny, tmp_path, keep):
    raw = tiny.read_bytes()
    cut = int(len(raw) * keep) if keep > 0 else len(raw) + keep
    archive = tmp_path / "cifar.tar.gz"
    archive.write_bytes(raw[:cut])
    out = tmp_path / "out"
    with pytest.raises(UserError) as err:
        cifar.extract(archive, out)
    msg = _one_line(err)
    assert msg.startswith(f"dataset archive {archive} is truncated or corrupt") and f"delete {archive}" in msg
    assert _files(out) == []


def test_extract_failure_keeps_previous_files(tiny, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "test_batch").write_bytes(b"previous")
    archive = tmp_path / "cifar.tar.gz"
    archive.write_bytes(tiny.read_bytes()[: len(tiny.read_bytes()) // 2])
    with pytest.raises(UserError):
        cifar.extract(archive, out)
    assert _files(out) == ["test_batch"] and (out / "test_batch").read_bytes() == b"previous"


def test_extract_corrupted_bytes(tiny, tmp_path):
    raw = tiny.read_bytes()
    out = tmp_path / "out"
    for k, pos in enumerate(np.linspace(20, len(raw) - 9, 12).astype(int)):
        bad = bytearray(raw)
        bad[pos] ^= 0x5A
        archive = tmp_path / f"bad{k}.tar.gz"
        archive.write_bytes(bytes(bad))
        with pytest.raises(UserError) as err:
            cifar.extract(archive, out)
        assert "truncated or corrupt" in _one_line(err)
        assert _files(out) == []


def test_extract_not_gzip_and_missing_archive(tmp_path):
    archive = tmp_path / "x.tar.gz"
    archive.write_bytes(b"plain text, not an archive" * 10)
    with pytest.raises(UserError) as err:
        cifar.extract(archive, tmp_path / "out")
    assert "truncated or corrupt" in _one_line(err)
    with pytest.raises(UserError) as err:
        cifar.extract(tmp_path / "missing.tar.gz", tmp_path / "out")
    assert "does not exist" in _one_line(err)
    assert _files(tmp_path / "out") == []


def test_extract_missing_member(tmp_path):
    archive = _tar_gz(tmp_path / "x.tar.gz", [
        _reg("cifar-10-batches-py/test_batch", b"t"),
        _reg("cifar-10-batches-py/data_batch_2", b"d"),
    ])
    out = tmp_path / "out"
    with pytest.raises(UserError) as err:
        cifar.extract(archive, out)
    msg = _one_line(err)
    assert msg.startswith(f"dataset archive {archive} has no cifar-10-batches-py/data_batch_1:")
    assert "test_batch" not in msg.split(":")[0]
    assert _files(out) == []


def test_extract_refuses_path_traversal(tmp_path):
    out = tmp_path / "deep" / "out"
    archive = _tar_gz(tmp_path / "evil.tar.gz", [
        _reg("../evil1", b"x"),
        _reg("cifar-10-batches-py/../../evil2", b"x"),
        _reg(str(tmp_path / "evil3"), b"x"),
        _reg("cifar-10-batches-py/../test_batch", b"x"),
        _reg("./cifar-10-batches-py/test_batch", b"good test"),
        _reg("cifar-10-batches-py/data_batch_1", b"good train"),
    ])
    result = cifar.extract(archive, out)
    assert result["test_batch"].read_bytes() == b"good test"
    assert result["data_batch_1"].read_bytes() == b"good train"
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["deep/out/data_batch_1", "deep/out/test_batch", "evil.tar.gz"]


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE])
def test_extract_refuses_links(tmp_path, kind):
    link = tarfile.TarInfo("cifar-10-batches-py/test_batch")
    link.type = kind
    link.linkname = "/etc/passwd"
    archive = _tar_gz(tmp_path / "evil.tar.gz", [
        (link, None),
        _reg("cifar-10-batches-py/data_batch_1", b"d"),
    ])
    out = tmp_path / "out"
    with pytest.raises(UserError) as err:
        cifar.extract(archive, out)
    assert "not a regular file" in _one_line(err)
    assert _files(out) == []


@pytest.mark.parametrize("members", [("../x",), ("a/b",), ("",), ("..",), ("x", "x")])
def test_extract_bad_member_names(tiny, tmp_path, members):
    with pytest.raises(ValueError):
        cifar.extract(tiny, tmp_path / "out", members=members)
    assert _files(tmp_path / "out") == []


def test_full_chain_fetch_verify_extract_load(tiny, tmp_path):
    dest = tmp_path / "results" / "data" / "cifar-10-python.tar.gz"
    cifar.fetch(tiny.as_uri(), dest)
    cifar.verify_md5(dest, hashlib.md5(tiny.read_bytes()).hexdigest())
    out = cifar.extract(dest, dest.parent / "cifar-10-batches-py")
    images, labels = cifar.load_batch(out["test_batch"])
    assert images.shape == (60, 3, 32, 32) and labels.shape == (60,)
    # gzip itself agrees the archive is intact
    with gzip.open(dest) as fin:
        assert len(fin.read()) > 60 * 3072
