"""Writing result files: whole or not at all, with the permissions the umask asks for."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def umask_mode(base: int = 0o666) -> int:
    """`base` as the umask trims it (0o644 under the usual umask 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return base & ~umask


def publish(tmp: Path | str, path: Path | str) -> None:
    """Rename a finished temporary file into place with the umask's permissions.

    mkstemp and NamedTemporaryFile create files readable by their owner only (0600),
    whatever the umask; results are meant to be shared like any file the user writes.
    """
    os.chmod(tmp, umask_mode())
    os.replace(tmp, path)


def write_atomic(path: Path | str, text: str) -> None:
    """Write `text` (UTF-8) to a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8", newline=""
    ) as tmp:
        tmp.write(text)
    try:
        publish(tmp.name, path)
    except BaseException:
        Path(tmp.name).unlink(missing_ok=True)
        raise
