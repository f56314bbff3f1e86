"""Atomic file writes: a reader (or a crash) never sees half a file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def _read_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


# Read once at import (os.umask can only be read by setting it, which is not thread-safe).
_UMASK = _read_umask()
_FILE_MODE = 0o666 & ~_UMASK
DIR_MODE = 0o777 & ~_UMASK
"""What ``mkdir`` would give a folder (``mkdtemp`` makes 0700 ones)."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder + ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600 files; give what open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
