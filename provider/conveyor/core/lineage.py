"""Lineage facts for a trained model: which rows, which code, which parameters.

Recorded as ``conveyor.*`` tags on the run and the model version so that anyone holding a model
version can tell whether two versions saw the same data and code.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

UNKNOWN_COMMIT = "unknown"


def content_hash(frame: pd.DataFrame) -> str:
    """SHA-256 over every row (values and row order) plus column names and dtypes.

    ``hash_pandas_object`` hashes each row in vectorised C, so a month (27k rows) takes
    milliseconds and a million rows well under a second; the index is left out so that the
    same rows loaded twice hash the same.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    if len(frame.columns):
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    digest.update(str(len(frame)).encode())
    return digest.hexdigest()


def params_hash(params: Mapping[str, Any]) -> str:
    """SHA-256 of the parameters as canonical JSON (sorted keys), stable across runs."""
    canonical = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _git(path: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_commit(path: Path) -> str:
    """The commit checked out at ``path``.

    Returns ``"unknown"`` outside a git work tree or without git: a model trained from an
    unpacked sdist is still a valid model, only with less lineage.
    """
    return _git(path, "rev-parse", "HEAD") or UNKNOWN_COMMIT


def git_dirty(path: Path) -> bool | None:
    """Whether tracked files differ from that commit (the model may not match the sha); None if unknown."""
    status = _git(path, "status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def lineage_tags(
    *, data_hash: str, git_commit: str, pipeline: str, params_hash: str, partition: str
) -> dict[str, str]:
    """The ``conveyor.*`` lineage tags of docs/contracts.md, for runs and model versions alike."""
    return {
        "conveyor.data_hash": data_hash,
        "conveyor.git_commit": git_commit,
        "conveyor.pipeline": pipeline,
        "conveyor.params_hash": params_hash,
        "conveyor.partition": partition,
    }
