"""Atomic writes: a reader sees the old file or the new one, whole; a crash leaves only a temporary."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import fsspec
import pytest

from conveyor.core import atomic


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    atomic.write_text(target, "old")
    atomic.write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_failed_write_keeps_the_old_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    atomic.write_text(target, "old")

    def crash(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_text(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    """A reader looping over the file while it is rewritten sees only whole versions."""
    target = tmp_path / "big.bin"
    versions = [bytes([i]) * 2_000_000 for i in range(1, 6)]
    atomic.write_bytes(target, versions[0])
    stop = threading.Event()
    seen: list[bytes] = []

    def read() -> None:
        while not stop.is_set():
            data = target.read_bytes()
            seen.append(data[:1] + data[-1:] + len(data).to_bytes(4, "big"))

    reader = threading.Thread(target=read)
    reader.start()
    for data in versions * 4:
        atomic.write_bytes(target, data)
    stop.set()
    reader.join()
    whole = {v[:1] + v[-1:] + len(v).to_bytes(4, "big") for v in versions}
    assert seen and set(seen) <= whole


def test_temporary_names_match_no_reader_glob(tmp_path: Path) -> None:
    name = atomic.temporary_name(str(tmp_path / "abc.parquet"))
    Path(name).write_bytes(b"partial")
    fs = fsspec.filesystem("file")
    assert fs.glob(f"{tmp_path}/*.parquet") == []
    assert atomic.is_temporary(name)


def test_object_store_path_is_one_put() -> None:
    fs = fsspec.filesystem("memory")
    atomic.fs_write_bytes(fs, "/bucket/log/a.parquet", b"payload")
    assert fs.cat_file("/bucket/log/a.parquet") == b"payload"
    assert fs.ls("/bucket/log", detail=False) == ["/bucket/log/a.parquet"]


def test_stale_temporaries_are_removed_young_ones_kept(tmp_path: Path) -> None:
    fs = fsspec.filesystem("file")
    stale = Path(atomic.temporary_name(str(tmp_path / "a.parquet")))
    young = Path(atomic.temporary_name(str(tmp_path / "b.parquet")))
    keep = tmp_path / "c.parquet"
    for path in (stale, young, keep):
        path.write_bytes(b"x")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    removed = atomic.remove_stale_temporaries(fs, str(tmp_path), older_than_s=600)
    assert [Path(p).name for p in removed] == [stale.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([young.name, keep.name])
