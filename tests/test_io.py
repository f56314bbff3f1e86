"""Atomic writes and damaged-file detection."""

import json

import pytest
import torch

from perception.checkpoint import write_checkpoint
from sim.harness.io import (
    FILE_MODE,
    append_jsonl,
    atomic_write_json,
    ensure_writable_dir,
    read_jsonl,
)


def test_append_and_read(tmp_path):
    p = tmp_path / "e.jsonl"
    append_jsonl(p, {"a": 1})
    append_jsonl(p, {"a": 2, "x": float("nan")})
    recs = read_jsonl(p)
    assert [r["a"] for r in recs] == [1, 2]
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left behind


def test_damaged_file_is_refused_with_path(tmp_path):
    p = tmp_path / "e.jsonl"
    p.write_text('{"a": 1}\n{"a": 2')
    with pytest.raises(ValueError, match="incomplete"):
        append_jsonl(p, {"a": 3})
    with pytest.raises(ValueError, match=r"e\.jsonl:2"):
        read_jsonl(p)


def test_atomic_json(tmp_path):
    p = tmp_path / "c.json"
    atomic_write_json(p, {"b": [1, 2]})
    assert json.loads(p.read_text()) == {"b": [1, 2]}


def test_unwritable_dir_is_a_clear_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(PermissionError, match="not writable"):
        ensure_writable_dir(f / "sub")


def test_written_files_get_ordinary_permissions(tmp_path):
    p = tmp_path / "c.json"
    atomic_write_json(p, {})
    assert (p.stat().st_mode & 0o777) == FILE_MODE


def test_checkpoints_get_the_same_mode_as_every_other_output(tmp_path):
    """One mode policy: safetensors weights and their JSON (written through atomic_path, which
    starts from mkstemp's 0600) end with the mode of any other output file."""
    write_checkpoint(tmp_path / "ckpt", {"w": torch.zeros(2)}, "net.json", {"architecture": "x"})
    modes = {f.name: f.stat().st_mode & 0o777 for f in (tmp_path / "ckpt").iterdir()}
    assert modes == {"model.safetensors": FILE_MODE, "net.json": FILE_MODE}


def test_append_reads_at_most_the_last_byte_and_keeps_earlier_bytes(tmp_path, monkeypatch):
    """Appends are O(1): one line added at the end, the file never read back whole (it was
    read and rewritten on every append, quadratic in the number of episodes)."""
    import builtins
    import os
    from pathlib import Path

    p = tmp_path / "e.jsonl"
    earlier = b"".join(b'{"k": %d, "pad": "%s"}\n' % (k, b"x" * 50) for k in range(2000))
    p.write_bytes(earlier)
    read_sizes = []
    real_read, real_pread, real_open = os.read, os.pread, builtins.open

    def counting_read(fd, n):
        data = real_read(fd, n)
        read_sizes.append(len(data))
        return data

    def counting_pread(fd, n, offset):
        data = real_pread(fd, n, offset)
        read_sizes.append(len(data))
        return data

    def no_reading_open(file, mode="r", *args, **kwargs):
        reads = not set(mode) & set("wa") or "+" in mode
        assert not (isinstance(file, (str, os.PathLike)) and Path(file) == p and reads), (
            f"append read {file}"
        )
        return real_open(file, mode, *args, **kwargs)

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"append read {self} whole")

    monkeypatch.setattr(os, "read", counting_read)
    monkeypatch.setattr(os, "pread", counting_pread)
    monkeypatch.setattr(builtins, "open", no_reading_open)
    monkeypatch.setattr(Path, "read_bytes", refuse)
    monkeypatch.setattr(Path, "read_text", refuse)
    append_jsonl(p, {"k": "new"})
    monkeypatch.undo()
    assert sum(read_sizes) <= 1  # the last byte: is the last line complete?
    data = p.read_bytes()
    assert data[: len(earlier)] == earlier and data[len(earlier) :] == b'{"k": "new"}\n'
    assert len(read_jsonl(p)) == 2001


def test_append_creates_the_file_with_the_policy_mode_and_refuses_a_cut_line(tmp_path):
    p = tmp_path / "new.jsonl"
    append_jsonl(p, {"a": 1})
    assert p.read_bytes() == b'{"a": 1}\n' and (p.stat().st_mode & 0o777) == FILE_MODE
    p.write_bytes(b'{"a": 1}\n{"a": 2}')  # complete JSON, but no newline: a cut write
    with pytest.raises(ValueError, match="incomplete"):
        append_jsonl(p, {"a": 3})
    assert p.read_bytes() == b'{"a": 1}\n{"a": 2}'  # untouched


def test_folder_lock_refuses_a_second_owner_naming_the_holder_pid(tmp_path):
    import os

    from sim.harness.io import FolderLocked, folder_lock

    with folder_lock(tmp_path) as lock_path:
        assert lock_path.read_text().strip() == str(os.getpid())
        with pytest.raises(FolderLocked, match=rf"PID {os.getpid()}\b") as e, folder_lock(tmp_path):
            pass
        assert isinstance(e.value, ValueError)  # the CLI prints it on one line and exits 2
    with folder_lock(tmp_path):  # released on exit: the next owner gets it
        pass
