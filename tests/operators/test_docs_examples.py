"""The DAG snippets the docs show build real tasks, so a renamed or newly required argument
breaks this test before it breaks a reader's DAG."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from airflow.sdk import DAG

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXAMPLES = {
    # doc -> the heading or sentence the snippet follows, and the tasks it must declare
    "provider.md": ("A DAG is wiring only:", {"model_gate", "promote", "rollback"}),
    "monitoring.md": ("## Use it", {"data_drift", "performance", "request_retrain", "retrain"}),
}


def _snippet(doc: str, after: str) -> str:
    text = (DOCS / doc).read_text()
    match = re.search(re.escape(after) + r".*?```python\n(.*?)```", text, re.S)
    assert match, f"no python block after {after!r} in docs/{doc}"
    return match.group(1)


@pytest.mark.parametrize("doc", sorted(EXAMPLES))
def test_a_docs_dag_snippet_builds_its_tasks(doc: str) -> None:
    after, tasks = EXAMPLES[doc]
    with DAG(dag_id=f"docs_{doc.removesuffix('.md')}", schedule=None) as dag:
        exec(compile(_snippet(doc, after), f"docs/{doc}", "exec"), {})
    assert set(dag.task_dict) == tasks
