"""Pictures people look at: per-feature reference-vs-window distributions, performance over time.

Figures are drawn with matplotlib's Agg backend (no display on workers) and returned, so the
caller decides where they go (``mlflow.log_figure``, a file, a notebook).
"""

from __future__ import annotations

import base64
import html
import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from conveyor.core.drift.interface import UNSEEN, DriftDetector, DriftResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_CATEGORIES_SHOWN = 12


def _figure(rows: int, cols: int, width: float, height: float) -> tuple[Figure, np.ndarray]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    return fig, axes


def _title(feature: Any) -> str:
    p = "n/a" if feature.p_value is None else f"{feature.p_value:.2g}"
    return f"{feature.feature} — {feature.test} {feature.statistic:.3g}, p={p}, PSI={feature.psi:.2f}"


def plot_feature_drift(detector: DriftDetector, window: pd.DataFrame, result: DriftResult) -> Figure:
    """One panel per tested feature: reference vs window distribution, drifted ones titled in red."""
    if not result.features:
        raise ValueError("this result has no per-feature tests (multivariate/online method): nothing to plot")
    encoded = detector.schema.encode(window, detector.config)
    by_name = {f.feature: f for f in result.features}
    names = list(detector.schema.features)
    cols = min(3, len(names))
    fig, axes = _figure(math.ceil(len(names) / cols), cols, 4.2, 2.8)
    for i, name in enumerate(detector.schema.numeric):
        ax = axes[i]
        ref, cur = detector.reference.numeric[:, i], encoded.numeric[:, i]
        bins = np.histogram_bin_edges(np.concatenate([ref, cur]), bins=30)
        ax.hist(ref, bins=bins, density=True, alpha=0.5, label=f"reference (n={len(ref)})", color="tab:blue")
        ax.hist(cur, bins=bins, density=True, alpha=0.5, label=f"window (n={len(cur)})", color="tab:orange")
        _decorate(ax, by_name[name])
    offset = len(detector.schema.numeric)
    for j, name in enumerate(detector.schema.categorical):
        ax = axes[offset + j]
        labels = [*detector.schema.categories[name], UNSEEN]
        ref_share = (
            np.bincount(detector.reference.codes[:, j], minlength=len(labels)) / detector.reference.n_rows
        )
        cur_share = np.bincount(encoded.codes[:, j], minlength=len(labels)) / encoded.n_rows
        top = np.argsort(-(ref_share + cur_share))[:MAX_CATEGORIES_SHOWN]
        x = np.arange(len(top))
        ax.bar(x - 0.2, ref_share[top], width=0.4, label="reference", color="tab:blue")
        ax.bar(x + 0.2, cur_share[top], width=0.4, label="window", color="tab:orange")
        ax.set_xticks(x, [labels[k] for k in top], rotation=60, fontsize=7)
        _decorate(ax, by_name[name])
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    verdict = "DRIFT" if result.is_drift else "no drift"
    fig.suptitle(
        f"{verdict}: {len(result.drifted_features)}/{len(result.features)} features "
        f"below p<{result.threshold:.2g} "
        f"({result.backend}/{result.method}, {result.correction}; reference n={result.n_reference}, "
        f"window n={result.n_window})"
    )
    return fig


def _decorate(ax: Any, feature: Any) -> None:
    ax.set_title(_title(feature), fontsize=8, color="tab:red" if feature.is_drift else "black")
    ax.legend(fontsize=6)
    ax.tick_params(labelsize=7)


def plot_performance_over_time(
    timeline: pd.DataFrame,
    reference: dict[str, float | None] | None = None,
    thresholds: dict[str, float] | None = None,
) -> Figure:
    """Metrics per period with the training reference (dashed) and the thresholds (dotted)."""
    metrics = [c for c in timeline.columns if c not in ("period", "n")]
    fig, axes = _figure(1, 1, 9, 3.5)
    ax = axes[0]
    for k, metric in enumerate(metrics):
        color = f"C{k}"
        ax.plot(timeline["period"], timeline[metric], marker="o", color=color, label=metric)
        if reference and reference.get(metric) is not None:
            ax.axhline(
                reference[metric], color=color, linestyle="--", linewidth=1, label=f"{metric} reference"
            )
        if thresholds and metric in thresholds:
            ax.axhline(
                thresholds[metric], color=color, linestyle=":", linewidth=1, label=f"{metric} threshold"
            )
    ax.set_ylabel("metric on labelled feedback")
    ax.set_title("Model performance over time")
    ax.legend(fontsize=7, ncols=3)
    fig.autofmt_xdate()
    return fig


def figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def drift_report_html(result: DriftResult, png: bytes | None, title: str) -> str:
    """A self-contained page: the decision, the per-feature table, the plot inlined as base64."""
    rows = "".join(
        "<tr{cls}><td>{f}</td><td>{k}</td><td>{t}</td><td>{s:.4g}</td><td>{p}</td><td>{psi:.3f}</td>"
        "<td>{d}</td></tr>".format(
            cls=' class="drift"' if f.is_drift else "",
            f=html.escape(f.feature),
            k=f.kind,
            t=f.test,
            s=f.statistic,
            p="—" if f.p_value is None else f"{f.p_value:.3g}",
            psi=f.psi,
            d="yes" if f.is_drift else "no",
        )
        for f in result.features
    )
    summary = (
        f"<p><b>{'DRIFT' if result.is_drift else 'no drift'}</b> — backend {result.backend}/{result.method}, "
        f"p_val {result.p_val} with {result.correction} (per-feature threshold {result.threshold:.3g}); "
        f"reference {result.n_reference} rows, window {result.n_window} rows "
        f"({result.n_window_dropped} dropped for NaN).</p>"
    )
    if result.statistic is not None:
        summary += f"<p>statistic {result.statistic:.4g}, p-value {result.p_value}</p>"
    if result.unseen_categories:
        summary += f"<p>categories unseen in the reference: {html.escape(str(result.unseen_categories))}</p>"
    image = (
        f'<img alt="feature drift" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        if png
        else ""
    )
    table = (
        "<table><tr><th>feature</th><th>kind</th><th>test</th><th>statistic</th><th>p-value</th>"
        f"<th>PSI</th><th>drift</th></tr>{rows}</table>"
        if rows
        else ""
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}tr.drift{background:#fdd}"
        f"img{{max-width:100%}}</style></head><body><h1>{html.escape(title)}</h1>{summary}{table}{image}"
        "</body></html>"
    )
