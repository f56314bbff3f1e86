"""Atomic file writes: a reader (or a crash) never sees half a file.

The one home of the project's atomic writes and of their file-mode policy: every output
file, checkpoints included, ends up with the mode ``open()`` would give it (0666 less the
umask), whichever writer made it.  Pure standard library + numpy, so perception and the
trainers use it too (they may import ``sim.geometry`` and this module, nothing else of
``sim``).  Also the project's append-only JSONL logs (one ``write`` per line, O(1)) and the
folder lock that gives an output folder one writer at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
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
    """Append one JSON line: one ``write(2)`` of the whole line at the end, then ``fsync``.

    O(1) in the file's size: only its last byte is read, to refuse appending to a file whose
    last line is incomplete (a write cut short: power loss, a full disk), which would glue the
    new record onto the damaged one.  A process killed at any moment leaves the file with or
    without the line, never half of it (one ``write`` of a few KB to a regular file); a short
    write (full disk) is cut back off before the error is raised.
    """
    path = Path(path)
    data = (
        json.dumps(record, sort_keys=True, default=_json_default, allow_nan=True) + "\n"
    ).encode("utf-8")
    fd = os.open(
        path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666
    )  # 0666 less the umask: FILE_MODE
    try:
        end = os.lseek(fd, 0, os.SEEK_END)
        if end and os.pread(fd, 1, end - 1) != b"\n":
            raise ValueError(
                f"{path}: last line is incomplete; refusing to append to a damaged file"
            )
        written = os.write(fd, data)
        if written != len(data):
            os.ftruncate(fd, end)
            raise OSError(
                f"{path}: short write ({written} of {len(data)} bytes); the line was not added"
            )
        os.fsync(fd)
    finally:
        os.close(fd)


def write_jsonl(path: str | os.PathLike, records: list[dict]) -> None:
    """Replace a JSONL file whole, atomically (a rewrite of lines appended earlier)."""
    text = "".join(
        json.dumps(r, sort_keys=True, default=_json_default, allow_nan=True) + "\n" for r in records
    )
    atomic_write_text(path, text)


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for each non-blank line of a JSONL file; a damaged line is an
    error naming the file and line."""
    path = Path(path)
    for k, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            yield k, json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ValueError(f"{path}:{k}: not valid UTF-8") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{k}: not valid JSON ({e.msg})") from None


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL file; a damaged line is an error naming the file and line."""
    return [value for _, value in iter_jsonl(path)]


class FolderLocked(ValueError):
    """Another process owns the folder (``folder_lock``): one line for the user, exit 2."""


LOCK_FILE = ".lock"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[Path]:
    """Own ``folder`` for the block: an advisory ``flock`` on ``folder/.lock``, which holds
    the owner's PID.  A second owner (another process, or another open in this one) is
    refused at once with :class:`FolderLocked` naming the holder's PID; the kernel releases
    the lock when its owner exits, however it dies, so a killed run's folder is free again.
    The lock file stays (removing it would let two owners lock two different files)."""
    path = Path(folder) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise FolderLocked(
                f"{folder} is in use by another process (PID {holder}, holding {path}); "
                "wait for it to finish, or stop it, then run again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield path
    finally:
        os.close(fd)  # closing the only descriptor of the open file releases the lock


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` if needed and prove it is writable; a clear error otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe.", delete=True):
            pass  # created, then deleted on close: the folder takes new files
    except OSError as e:
        raise PermissionError(
            f"output folder {str(path)!r} is not writable: {e.strerror or e}"
        ) from None
    return path


def checkpoint_hashes(path: str | os.PathLike) -> dict[str, str]:
    """SHA-256 of every file directly in a checkpoint folder (logs in sub-folders aside): what
    an evaluation records, a resume and ``drive explain`` compare, and Ray ships by."""
    out = {}
    for f in sorted(Path(path).iterdir()):
        if f.is_file() and not f.name.startswith("."):
            out[f.name] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


WRITTEN_BY = "written_by"
"""The key of every JSON output (and the tag of every PNG, Markdown and HTML one) that names
the ``drive`` command which wrote it: the output policy's proof of authorship
(:func:`check_output_file`)."""

_MARKER_PREFIX = "<!-- written by: "
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_KEY = "Software"  # the PNG tEXt keyword that carries WRITTEN_BY's value (matplotlib's)
_SNIFF_LIMIT = 64 * 2**20  # [bytes] larger JSON files are not parsed to find their author


def text_marker(kind: str) -> str:
    """The first line of a Markdown or HTML output written by ``kind`` (an HTML comment,
    invisible in both)."""
    return f"{_MARKER_PREFIX}{kind} -->"


def written_by(path: str | os.PathLike) -> str | None:
    """The ``drive`` command that wrote ``path`` (its :data:`WRITTEN_BY` record), or ``None``
    for a file drive did not write, cannot be read, or predates the policy.  JSON: the
    top-level key; PNG: the tEXt chunk :data:`PNG_KEY`; Markdown, HTML: the first line
    (:func:`text_marker`).  Other kinds carry no record (``None``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            if path.stat().st_size > _SNIFF_LIMIT:
                return None
            value = json.loads(path.read_bytes())
            kind = value.get(WRITTEN_BY) if isinstance(value, dict) else None
            return kind if isinstance(kind, str) else None
        if suffix == ".png":
            return _png_text(path, PNG_KEY)
        if suffix in (".md", ".html"):
            with open(path, encoding="utf-8") as f:
                first = f.readline(512).strip()
            if first.startswith(_MARKER_PREFIX) and first.endswith(" -->"):
                return first[len(_MARKER_PREFIX) : -len(" -->")]
    except (OSError, ValueError):  # unreadable, not UTF-8, not JSON: not ours
        return None
    return None


def _png_text(path: Path, key: str) -> str | None:
    """The value of the first tEXt chunk named ``key`` before the image data, or ``None``."""
    with open(path, "rb") as f:
        if f.read(8) != _PNG_SIGNATURE:
            return None
        while True:
            head = f.read(8)
            if len(head) < 8:
                return None
            size, ctype = int.from_bytes(head[:4], "big"), head[4:]
            if ctype in (b"IDAT", b"IEND") or size > 2**20:
                return None
            body = f.read(size)
            f.read(4)  # CRC
            if ctype == b"tEXt":
                name, _, value = body.partition(b"\0")
                if name.decode("latin-1") == key:
                    return value.decode("latin-1")


def check_output_file(
    path: str | os.PathLike,
    *,
    kind: str,
    force: bool = False,
    option: str = "--out",
    suffixes: tuple[str, ...] = (),
) -> Path:
    """The output policy for one file, applied before any work: ``path`` may be written by
    the command ``kind`` (e.g. ``"drive bench camera"``) when it does not exist, when it is
    an earlier output of the same command (:func:`written_by`), or with ``force``
    (``--force``).  Refused (nothing created): a folder, a name without one of ``suffixes``,
    a file drive did not write or another command wrote (a results log, a dataset's
    manifest, a user's file), a place that cannot be written.  Returns the path."""
    path = Path(path)
    shown = str(path)
    if not path.name or path.is_dir():
        raise ValueError(f"{option} {shown!r} is a folder; give a file name")
    if suffixes and path.suffix.lower() not in suffixes:
        raise ValueError(f"{option} {shown!r} must end in {' or '.join(suffixes)}")
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise ValueError(f"{option} {shown!r} exists and is not a regular file")
        author = written_by(path)
        if not force and author != kind:
            whose = f"{author} wrote it" if author else "drive did not write it"
            raise FileExistsError(
                f"{option} {shown!r} already exists and {whose}, not {kind}; choose another "
                "path, or pass --force to replace it"
            )
    _check_creatable(path.parent, option, shown)
    return path


def _check_creatable(folder: Path, option: str, shown: str) -> None:
    """``folder`` exists as a writable folder, or could be made (its nearest existing
    ancestor is one); nothing is created."""
    probe = folder if str(folder) else Path(".")
    while not probe.exists():
        if probe.is_symlink() or probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"{option} {shown!r}: {str(probe)!r} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(f"{option} {shown!r}: folder {str(probe)!r} is not writable")


def write_json_output(path: str | os.PathLike, obj: dict, *, kind: str) -> None:
    """Write a command's JSON output atomically, stamped with its author (:data:`WRITTEN_BY`),
    creating its folder: the write half of :func:`check_output_file`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {WRITTEN_BY: kind, **obj})


def write_text_output(path: str | os.PathLike, text: str, *, kind: str) -> None:
    """Write a Markdown or HTML output atomically, its first line the author's marker."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text_marker(kind) + "\n" + text)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
