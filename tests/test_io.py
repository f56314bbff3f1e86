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
