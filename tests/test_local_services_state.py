"""``var/services.json`` under concurrent starters and a reader that does not take the lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from conveyor.local import services

STARTERS = 6
RECORDS_EACH = 40

# Each starter records its own (live) pid under many names, as make airflow / make demo do.
STARTER = """
import os, sys
from pathlib import Path
from conveyor.local import services
state, me = Path(sys.argv[1]), sys.argv[2]
for j in range({records}):
    services.record(state, f"{{me}}-{{j}}", os.getpid(), group=False, url="http://127.0.0.1:1/" + "x" * 2000)
"""


def test_concurrent_starters_keep_every_entry_and_readers_never_see_partial_json(tmp_path: Path) -> None:
    state = tmp_path / "var" / "services.json"
    services.record(state, "first", os.getpid(), group=False)
    errors: list[Exception] = []
    reads = 0
    done = threading.Event()

    def read() -> None:  # make down / make airflow's "already running?" check: no lock
        nonlocal reads
        while not done.is_set():
            try:
                json.loads(state.read_text())
            except (ValueError, FileNotFoundError) as exc:
                errors.append(exc)
            reads += 1

    reader = threading.Thread(target=read)
    reader.start()
    code = STARTER.format(records=RECORDS_EACH)
    starters = [
        subprocess.Popen([sys.executable, "-c", code, str(state), f"s{i}"], stderr=subprocess.PIPE)
        for i in range(STARTERS)
    ]
    outcomes = [(p.wait(timeout=60), p.stderr.read().decode()) for p in starters]
    done.set()
    reader.join()
    assert all(rc == 0 for rc, _ in outcomes), outcomes
    assert errors == [] and reads > 0
    recorded = json.loads(state.read_text())
    expected = {"first"} | {f"s{i}-{j}" for i in range(STARTERS) for j in range(RECORDS_EACH)}
    assert set(recorded) == expected
    assert sorted(p.name for p in state.parent.iterdir()) == ["services.json", "services.lock"]
