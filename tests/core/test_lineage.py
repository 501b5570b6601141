"""Lineage: the data hash sees every row, params hash ignores key order, git facts degrade gracefully."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd

from conveyor.core.lineage import (
    UNKNOWN_COMMIT,
    content_hash,
    git_commit,
    git_dirty,
    lineage_tags,
    params_hash,
)

REPO = Path(__file__).resolve().parents[2]


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"carrier": ["UA", "AA", "DL"], "arr_delay": [1.0, None, 20.0], "hour": [5, 6, 7]})


def test_same_rows_hash_the_same_whatever_the_index() -> None:
    frame = _frame()
    assert content_hash(frame) == content_hash(frame.set_axis([10, 11, 12]))
    assert len(content_hash(frame)) == 64


def test_any_single_value_row_order_or_dtype_changes_the_hash() -> None:
    base = content_hash(_frame())
    changed = _frame()
    changed.loc[2, "arr_delay"] = 21.0
    assert content_hash(changed) != base
    assert content_hash(_frame().iloc[::-1]) != base
    assert content_hash(_frame().astype({"hour": "float64"})) != base
    assert content_hash(_frame().iloc[:2]) != base


def test_empty_frames_hash_by_their_columns() -> None:
    assert content_hash(_frame().iloc[:0]) != content_hash(pd.DataFrame())


def test_params_hash_is_independent_of_key_order_but_not_of_values() -> None:
    a = {"training": {"lr": 0.1, "epochs": 3}, "partition": "2013-01"}
    b = {"partition": "2013-01", "training": {"epochs": 3, "lr": 0.1}}
    assert params_hash(a) == params_hash(b)
    assert params_hash(a) != params_hash({**a, "partition": "2013-02"})


def test_git_commit_is_head_of_the_repository() -> None:
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert git_commit(REPO) == head.stdout.strip()
    assert isinstance(git_dirty(REPO), bool)


def test_outside_a_repository_commit_is_unknown(tmp_path: Path) -> None:
    assert git_commit(tmp_path) == UNKNOWN_COMMIT
    assert git_dirty(tmp_path) is None


def test_lineage_tags_use_the_contract_names() -> None:
    tags = lineage_tags(data_hash="d", git_commit="g", pipeline="p", params_hash="h", partition="2013-01")
    assert tags == {
        "conveyor.data_hash": "d",
        "conveyor.git_commit": "g",
        "conveyor.pipeline": "p",
        "conveyor.params_hash": "h",
        "conveyor.partition": "2013-01",
    }
