"""Files that a reader never sees half-written: write a temporary beside the target, then rename.

Conveyor's files are read while they are written: the monitoring sensors list the inference log
while the gateway appends to it, the JupyterLab drift view reads reports the sensors record,
``make down`` reads ``var/services.json`` while a starter updates it. A reader that opens a file
in the middle of ``open(path, "wb")`` + ``write`` sees 0 bytes or a truncated file and crashes.

Local file systems: the bytes go to ``<name>.<random>.tmp`` in the same folder (same file system,
so the rename is atomic; the suffix never matches a reader's ``*.parquet`` / ``*.json`` glob),
are flushed to disk, then ``os.replace`` puts them in place in one step. Object stores have no
rename, but a single PUT of the whole object is already atomic: a reader sees the old object or
the new one, never a part. A writer that dies between the two steps leaves only a ``.tmp`` file,
which readers ignore and ``remove_stale_temporaries`` deletes.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".tmp"


def temporary_name(path: str) -> str:
    """A sibling of ``path`` that no glob for the real file's extension matches."""
    return f"{path}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}"


def is_temporary(path: str) -> bool:
    return path.endswith(TEMP_SUFFIX)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to the local ``path`` so that readers see the old content or the new, whole."""
    target = Path(path)
    tmp = Path(temporary_name(str(target)))
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def fs_write_bytes(fs: Any, path: str, data: bytes) -> None:
    """``write_bytes`` on any fsspec file system: rename on local disks, one PUT on object stores."""
    if _is_local(fs):
        write_bytes(path, data)
    else:
        fs.pipe_file(path, data)


def remove_stale_temporaries(fs: Any, folder: str, older_than_s: float = 600.0) -> list[str]:
    """Delete temporaries a crashed writer left in ``folder``; a live writer's are younger than that.

    Returns the removed paths. Best effort: a temporary that vanished meanwhile (its writer
    finished) is not an error.
    """
    removed = []
    cutoff = time.time() - older_than_s
    for path in fs.glob(f"{folder.rstrip('/')}/*{TEMP_SUFFIX}"):
        try:
            modified = fs.modified(path).timestamp()
        except (FileNotFoundError, NotImplementedError):
            continue
        if modified < cutoff:
            try:
                fs.rm_file(path)
            except FileNotFoundError:
                continue
            removed.append(path)
    return removed
