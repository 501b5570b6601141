"""Held-out decisions of the flight model, one month at a time, as scheduled ``ml_ci`` runs train.

A scheduled (or backfill) ``ml_ci`` run trains on one month with every row and the project's own
parameters; this does the same through the project's functions (split, ``train_classifier``,
``evaluate_classifier``) for each month of 2013, once on the real labels and once per seed on
shuffled labels (what the gate must refuse). Writes ``benchmarks/results/monthly_decisions.json``;
docs/kedro.md quotes the table.

    .venv/bin/python benchmarks/monthly_decisions.py [--months 2013-02,2013-03] [--shuffled-seeds 0,1]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "monthly_decisions.json"
MONTHS = [f"2013-{m:02d}" for m in range(1, 13)]
SHOWN = ("f1", "roc_auc", "log_loss", "precision", "recall", "accuracy", "positive_rate", "rows")


def project_parameters() -> dict[str, Any]:
    from kedro.config import OmegaConfigLoader

    conf = ROOT / "kedro_project" / "conf"
    return dict(
        OmegaConfigLoader(conf_source=str(conf), base_env="base", default_run_env="base")["parameters"]
    )


def measure(months: list[str], shuffled_seeds: list[int]) -> list[dict[str, Any]]:
    from flight_delays.data import flights_by_month, join_weather, read_table, select_months
    from flight_delays.evaluation import evaluate_classifier
    from flight_delays.features import build_features, split_by_time
    from flight_delays.training import train_classifier

    params = project_parameters()
    split = params["data_processing"]
    flights, weather = flights_by_month(), read_table("weather")
    rows = []
    for month in months:
        model_input = build_features(join_weather(select_months(flights, month), weather))
        splits = split_by_time(
            model_input,
            validation_fraction=split["validation_fraction"],
            test_fraction=split["test_fraction"],
            max_rows=split["max_rows"],
            seed=split["seed"],
        )
        variants = [("real", {})] + [
            (f"shuffled (seed {seed})", {"shuffle_labels": True, "seed": seed}) for seed in shuffled_seeds
        ]
        for labels, override in variants:
            began = time.perf_counter()
            model, history = train_classifier(
                splits.train, splits.validation, {**params["training"], **override}
            )
            scores, _, _ = evaluate_classifier(model, splits.test)
            row = {
                "month": month,
                "labels": labels,
                "threshold": model.threshold,
                **{k: scores[k] for k in SHOWN},
                "epochs": len(history),
                "seconds": time.perf_counter() - began,
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", default=",".join(MONTHS))
    parser.add_argument("--shuffled-seeds", default="0,1")
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows = measure(args.months.split(","), [int(s) for s in args.shuffled_seeds.split(",") if s])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "what": "held-out metrics per month, project defaults (all rows, chosen threshold)",
                "loadavg_before": load_before,
                "loadavg_after": os.getloadavg(),
                "note": "2-core machine shared with other work: the seconds are indicative only",
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
