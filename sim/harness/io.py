"""Atomic file writes: a reader (or a crash) never sees half a file.

The one home of the project's atomic writes and of their file-mode policy: every output
file, checkpoints included, ends up with the mode ``open()`` would give it (0666 less the
umask), whichever writer made it.  Pure standard library + numpy, so perception and the
trainers use it too (they may import ``sim.geometry`` and this module, nothing else of
``sim``).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def _read_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


# Read once at import (os.umask can only be read by setting it, which is not thread-safe).
_UMASK = _read_umask()
FILE_MODE = 0o666 & ~_UMASK
"""The mode of every output file: what ``open()`` would give (0666 less the umask)."""
DIR_MODE = 0o777 & ~_UMASK
"""What ``mkdir`` would give a folder (``mkdtemp`` makes 0700 ones)."""


def publish_file(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give a finished temp file the policy's mode and rename it onto ``path`` (same folder)."""
    os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600 files; give what open() would
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temp path in ``path``'s folder for a writer that wants a file name (safetensors,
    a video muxer); when the block ends without an error the file gets the policy's mode
    and is renamed onto ``path``, otherwise it is removed.  ``suffix`` keeps the extension
    a writer may look at (``.mp4``)."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        publish_file(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder + ``os.replace``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line atomically: the file is rewritten whole, so it is always valid.

    Quadratic in the file's size, which is fine for per-episode records (a few KB each).
    """
    path = Path(path)
    old = path.read_bytes() if path.exists() else b""
    if old and not old.endswith(b"\n"):
        raise ValueError(f"{path}: last line is incomplete; refusing to append to a damaged file")
    line = json.dumps(record, sort_keys=True, default=_json_default, allow_nan=True) + "\n"
    atomic_write_bytes(path, old + line.encode("utf-8"))


def write_jsonl(path: str | os.PathLike, records: list[dict]) -> None:
    """Replace a JSONL file whole, atomically (a rewrite of lines appended earlier)."""
    text = "".join(json.dumps(r, sort_keys=True, default=_json_default, allow_nan=True) + "\n" for r in records)
    atomic_write_text(path, text)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL file; a damaged line is an error naming the file and line."""
    records = []
    path = Path(path)
    for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{k}: not valid JSON ({e.msg})") from None
    return records


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` if needed and prove it is writable; a clear error otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe.", delete=True)
        probe.close()
    except OSError as e:
        raise PermissionError(f"output folder {str(path)!r} is not writable: {e.strerror or e}") from None
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
