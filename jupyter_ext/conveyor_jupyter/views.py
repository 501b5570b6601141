"""Rich notebook output for runs, run lists, logs, models and drift.

A run is emitted as the custom MIME type ``application/vnd.conveyor.run+json``: JupyterLab with
our extension renders it and keeps polling the server extension, so the output turns green without
the kernel doing anything. Other frontends (VS Code, nbviewer, a plain terminal) get the HTML and
text fallbacks, frozen at the state they had when the cell ran.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import quote

RUN_MIME = "application/vnd.conveyor.run+json"
TERMINAL_STATES = frozenset({"success", "failed", "upstream_failed", "skipped", "removed"})
STATE_COLOURS = {
    "success": "#2e7d32",
    "failed": "#c62828",
    "upstream_failed": "#ef6c00",
    "running": "#1565c0",
    "queued": "#757575",
    "deferred": "#6a1b9a",
    "awaiting_input": "#f9a825",
    "skipped": "#9e9e9e",
}


def airflow_run_url(airflow_url: str, dag_id: str, run_id: str) -> str:
    return f"{airflow_url}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def _badge(state: str | None) -> str:
    state = state or "none"
    colour = STATE_COLOURS.get(state, "#616161")
    return (
        f'<span class="conveyor-state" style="background:{colour};color:#fff;border-radius:3px;'
        f'padding:0 4px">{escape(state)}</span>'
    )


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass
class RunView:
    """One Airflow DAG run or local Kedro run, as the notebook and the side panel see it."""

    kind: str  # "airflow" | "kedro"
    run_id: str
    state: str
    dag_id: str = ""
    pipeline: str = ""
    logical_date: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    conf: dict[str, Any] = field(default_factory=dict)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "run_id": self.run_id,
            "dag_id": self.dag_id,
            "pipeline": self.pipeline,
            "state": self.state,
            "logical_date": self.logical_date,
            "start_date": self.start_date,
            "end_date": self.end_date,
            "conf": self.conf,
            "tasks": self.tasks,
            "links": self.links,
            "approvals": self.approvals,
            "message": self.message,
        }

    @property
    def title(self) -> str:
        return (
            f"{self.dag_id} / {self.run_id}"
            if self.kind == "airflow"
            else f"kedro {self.pipeline} / {self.run_id}"
        )

    def _repr_html_(self) -> str:
        links = " ".join(
            f'<a href="{escape(url)}" target="_blank">{escape(name)}</a>' for name, url in self.links.items()
        )
        tasks = _table(
            ["task", "state", "try"],
            [
                [escape(t["task_id"]), _badge(t.get("state")), escape(str(t.get("try_number", "")))]
                for t in self.tasks
            ],
        )
        message = f"<div>{escape(self.message)}</div>" if self.message else ""
        return (
            f'<div class="conveyor-run"><b>{escape(self.title)}</b> {_badge(self.state)} {links}'
            f"{message}{tasks if self.tasks else ''}</div>"
        )

    def __repr__(self) -> str:
        lines = [f"{self.title}: {self.state}"]
        lines += [f"  {t['task_id']}: {t.get('state')}" for t in self.tasks]
        lines += [f"  {name}: {url}" for name, url in self.links.items()]
        if self.message:
            lines.append(f"  {self.message}")
        return "\n".join(lines)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {RUN_MIME: self.to_json(), "text/html": self._repr_html_(), "text/plain": repr(self)}


@dataclass
class RunListView:
    """Recent runs of one or all DAGs."""

    runs: list[RunView]

    def _repr_html_(self) -> str:
        rows = [
            [
                escape(r.dag_id),
                escape(r.run_id),
                _badge(r.state),
                escape(r.start_date or ""),
                escape(r.end_date or ""),
            ]
            for r in self.runs
        ]
        return _table(["dag", "run", "state", "started", "ended"], rows) if rows else "<i>no runs</i>"

    def __repr__(self) -> str:
        return "\n".join(f"{r.dag_id}  {r.run_id}  {r.state}" for r in self.runs) or "no runs"


@dataclass
class LogView:
    """The log of one task try; plain text because logs are read, searched and copied."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    text: str

    def _repr_html_(self) -> str:
        return (
            f"<div><b>{escape(self.dag_id)} / {escape(self.run_id)} / {escape(self.task_id)}"
            f" (try {self.try_number})</b><pre>{escape(self.text)}</pre></div>"
        )

    def __repr__(self) -> str:
        return self.text


@dataclass
class ModelView:
    """Registry summary from ``conveyor_jupyter.registry.model_summary``."""

    summary: dict[str, Any]
    mlflow_url: str = ""

    def _repr_html_(self) -> str:
        s = self.summary
        rows = []
        for v in s["versions"]:
            gate = v["gate"].get("status", "")
            metrics = ", ".join(f"{k}={val:.4g}" for k, val in sorted(v["metrics"].items()))
            rows.append(
                [
                    escape(v["version"]),
                    escape(", ".join(v["aliases"])),
                    escape(metrics),
                    escape(str(gate)),
                    escape(", ".join(f"{k}={val}" for k, val in sorted(v["lineage"].items()))),
                ]
            )
        versions = _table(["version", "aliases", "metrics", "gate", "lineage"], rows)
        comparison = ""
        if s["comparison"]:
            comparison = "<h4>champion vs challenger</h4>" + _table(
                ["metric", "champion", "challenger", "delta"],
                [
                    [escape(c["metric"]), _fmt(c["champion"]), _fmt(c["challenger"]), _fmt(c["delta"])]
                    for c in s["comparison"]
                ],
            )
        return f"<div class='conveyor-models'><b>{escape(s['name'])}</b>{versions}{comparison}</div>"

    def __repr__(self) -> str:
        s = self.summary
        lines = [f"model {s['name']}"]
        for v in s["versions"]:
            lines.append(
                f"  v{v['version']} {','.join(v['aliases'])} {json.dumps(v['metrics'], sort_keys=True)}"
            )
        for c in s["comparison"]:
            lines.append(
                f"  {c['metric']}: champion={_fmt(c['champion'])} challenger={_fmt(c['challenger'])}"
            )
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


@dataclass
class BackfillView:
    """A created backfill: which dates, how many runs at once, and where to watch it."""

    backfill: dict[str, Any]
    airflow_url: str

    @property
    def url(self) -> str:
        return f"{self.airflow_url}/dags/{quote(str(self.backfill.get('dag_id', '')), safe='')}/backfills"

    def _repr_html_(self) -> str:
        b = self.backfill
        return (
            f"<div class='conveyor-backfill'><b>backfill {escape(str(b.get('id')))}</b> of "
            f"{escape(str(b.get('dag_id')))}: {escape(str(b.get('from_date')))} → "
            f"{escape(str(b.get('to_date')))}"
            f" (max {escape(str(b.get('max_active_runs')))} at once) "
            f'<a href="{escape(self.url)}" target="_blank">Airflow</a></div>'
        )

    def __repr__(self) -> str:
        b = self.backfill
        return f"backfill {b.get('id')} of {b.get('dag_id')}: {b.get('from_date')} -> {b.get('to_date')}"


@dataclass
class DriftView:
    """The newest drift report of a model; plots are embedded so the notebook keeps them offline."""

    summary: dict[str, Any]
    plots: dict[str, str]  # artifact path -> base64 PNG

    def _rows(self) -> list[list[str]]:
        features = self.summary["report"].get("features")
        if not isinstance(features, list):
            return []
        keys = [
            k
            for k in ("feature", "test", "statistic", "p_value", "psi", "is_drift")
            if any(k in f for f in features)
        ]
        return [keys] + [[escape(str(f.get(k, ""))) for k in keys] for f in features]

    def _repr_html_(self) -> str:
        s = self.summary
        rows = self._rows()
        table = (
            _table(rows[0], rows[1:]) if rows else f"<pre>{escape(json.dumps(s['report'], indent=2))}</pre>"
        )
        images = "".join(
            f'<figure><img src="data:image/png;base64,{data}" alt="{escape(path)}"/>'
            f"<figcaption>{escape(path)}</figcaption></figure>"
            for path, data in self.plots.items()
        )
        headline = ", ".join(f"{k}={v:.4g}" for k, v in sorted(s["metrics"].items()))
        return (
            f"<div class='conveyor-drift'><b>drift of {escape(s['name'])}</b> (run {escape(s['run_id'])}) "
            f"{escape(headline)}{table}{images}</div>"
        )

    def __repr__(self) -> str:
        s = self.summary
        drifted = s["report"].get("is_drift")
        plots = ", ".join(self.plots) or "none"
        return f"drift of {s['name']} (run {s['run_id']}): drift={drifted} plots={plots}"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/html": self._repr_html_(), "text/plain": repr(self)}
        if self.plots:
            bundle["image/png"] = next(iter(self.plots.values()))
        return bundle
