"""Frames streamed from disk: a training set larger than RAM (issue 31).

A rig dataset holds 39.6 kB per road crop; 200k on-policy frames are 7.9 GB, and six
recovery views per state multiply that by seven.  :func:`agents.e2e.demos.load_demos` with
``stream_dir`` therefore checks each episode as it reads it (its content hash) and appends
its frames to a flat file in ``stream_dir`` instead of keeping them; training gathers the
rows each batch needs from that file with ``os.pread``.  The process's memory holds one
episode while loading and one batch while training, whatever the dataset's size; the
operating system's page cache (not the process) keeps the hot rows.

Why a flat file of fixed-size rows rather than the HDF5 file itself: the recorder's HDF5
chunks cut a frame into 48 blocks of 17x50 pixels of one channel, so a single row read
touches 48 chunks; a flat file gives one contiguous read per frame, and consecutive rows
(a stack of frames) merge into one read.  The file is written in ``stream_dir`` and
renamed into place when complete; :class:`FrameFile` opens its descriptor lazily per
process, so forked loader workers read it safely.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np


class FrameFile:
    """``uint8[N, *row_shape]`` rows stored back to back in ``path``, read by index.

    ``frames[idx]`` (an int array, a slice or an int) returns a fresh array in ``idx``'s
    order; with ``views`` > 1 the file holds ``N * views`` rows (state-major) and
    ``frames[rows, views]`` picks one view per row, like the in-memory ``[N, V, ...]`` array
    it stands for."""

    def __init__(self, path: str | Path, row_shape: tuple[int, ...], n: int, views: int = 0):
        self.path = Path(path)
        self.row_shape = tuple(int(v) for v in row_shape)
        self.row_bytes = int(np.prod(self.row_shape))
        self.views = int(views)
        self.n = int(n)
        size = self.path.stat().st_size
        want = self.n * max(self.views, 1) * self.row_bytes
        if size != want:
            raise ValueError(
                f"{self.path}: {size} bytes, expected {want} ({self.n} rows of {self.row_shape}"
                f"{f' x {self.views} views' if self.views else ''}); the stream file is damaged"
            )
        self._fd: int | None = None
        self._pid = -1

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n, self.views, *self.row_shape) if self.views else (self.n, *self.row_shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8)

    @property
    def nbytes(self) -> int:
        return self.n * max(self.views, 1) * self.row_bytes

    def __len__(self) -> int:
        return self.n

    def __getstate__(self) -> dict:  # a pickled copy (a spawned loader worker) reopens the file
        return {**self.__dict__, "_fd": None, "_pid": -1}

    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        with contextlib.suppress(Exception):
            self.close()

    def __getitem__(self, key) -> np.ndarray:
        if self.views:
            if not isinstance(key, tuple) or len(key) != 2:
                raise IndexError("a recovery-view stream is indexed [rows, views]")
            rows, views = (np.asarray(k, dtype=np.int64).reshape(-1) for k in key)
            rows, views = np.broadcast_arrays(rows, views)
            if np.any((views < 0) | (views >= self.views)):
                raise IndexError(f"view index out of [0, {self.views})")
            return self._read(self._check(rows) * self.views + views)
        if isinstance(key, slice):
            return self._read(np.arange(self.n)[key])
        scalar = np.ndim(key) == 0
        rows = self._check(np.asarray(key, dtype=np.int64).reshape(-1))
        out = self._read(rows)
        return out[0] if scalar else out

    def _check(self, rows: np.ndarray) -> np.ndarray:
        rows = np.where(rows < 0, rows + self.n, rows)
        if rows.size and (rows.min() < 0 or rows.max() >= self.n):
            raise IndexError(f"row index out of [0, {self.n})")
        return rows

    def _read(self, rows: np.ndarray) -> np.ndarray:
        """Rows by flat index: each run of consecutive distinct rows in one ``pread``."""
        out = np.empty((len(rows), *self.row_shape), np.uint8)
        if not len(rows):
            return out
        fd = self._descriptor()
        uniq, inverse = np.unique(rows, return_inverse=True)
        buf = np.empty((len(uniq), self.row_bytes), np.uint8)
        breaks = np.flatnonzero(np.diff(uniq) != 1) + 1
        for start, stop in zip(
            np.concatenate([[0], breaks]), np.concatenate([breaks, [len(uniq)]]), strict=True
        ):
            want = (stop - start) * self.row_bytes
            got = os.preadv(
                fd, [memoryview(buf[start:stop]).cast("B")], int(uniq[start]) * self.row_bytes
            )
            if got != want:
                raise OSError(f"{self.path}: short read ({got} of {want} bytes)")
        out.reshape(len(rows), -1)[:] = buf[inverse.reshape(-1)]
        return out


class FrameFileWriter:
    """Appends ``uint8[n, *row_shape]`` blocks to a temp file; :meth:`finish` renames it into
    place and returns the :class:`FrameFile`."""

    def __init__(self, path: str | Path, views: int = 0) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".part")
        self.views = int(views)
        self._f = open(self.tmp, "wb")  # noqa: SIM115 - closed by finish/abort
        self.n = 0
        self.row_shape: tuple[int, ...] | None = None

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=np.uint8)
        shape = tuple(block.shape[2:] if self.views else block.shape[1:])
        if self.views and block.shape[1] != self.views:
            raise ValueError(
                f"{self.path}: a block of {block.shape[1]} views, expected {self.views}"
            )
        if self.row_shape is None:
            self.row_shape = shape
        elif shape != self.row_shape:
            raise ValueError(f"{self.path}: rows of {shape} after rows of {self.row_shape}")
        self._f.write(memoryview(block).cast("B"))
        self.n += len(block)

    def finish(self) -> FrameFile:
        self._f.close()
        os.replace(self.tmp, self.path)
        return FrameFile(self.path, self.row_shape or (0,), self.n, self.views)

    def abort(self) -> None:
        self._f.close()
        self.tmp.unlink(missing_ok=True)


class RowSubset:
    """Rows ``index`` of an array-like (a :class:`FrameFile`), indexed like an array of
    ``len(index)`` rows: a subset of a streamed dataset without reading it."""

    def __init__(self, base, index: np.ndarray) -> None:
        self.base, self.index = base, np.asarray(index, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.base.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple):
            return self.base[(self.index[np.asarray(key[0])], *key[1:])]
        return self.base[self.index[key]]


STREAM_DIR_ENV = "DRIVE_STREAM_DIR"
"""Where streamed training sets are written (default: the system's temp folder); a run's
folder is removed when its training ends."""


@contextlib.contextmanager
def stream_folder() -> Iterator[Path]:
    """A fresh folder for one training run's streamed frames, removed afterwards."""
    root = os.environ.get(STREAM_DIR_ENV) or None
    if root is not None:
        Path(root).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="drive-stream-", dir=root) as folder:
        yield Path(folder)
