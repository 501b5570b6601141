"""``conveyor``: set a Kedro project up, serve models, deploy and roll back versions, read a gateway's status.

Settings come from flags, then the environment (``CONVEYOR_GATEWAY_URL``,
``CONVEYOR_GATEWAY_TOKEN``, ``MLFLOW_TRACKING_URI``), so the same commands work on a laptop and
in CI without repeating secrets on the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from conveyor.core.contract import TASKS

DEFAULT_GATEWAY = "http://127.0.0.1:8080"
DEFAULT_STORE = "sqlite:///var/gateway-state.db"


def _pairs(values: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, uri = value.partition("=")
        if not sep or not name or not uri:
            raise SystemExit(f"--deploy takes NAME=MODEL_URI, got {value!r}")
        out[name] = uri
    return out


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _token(args: argparse.Namespace) -> str | None:
    return args.token or os.environ.get("CONVEYOR_GATEWAY_TOKEN")


def _print(payload: Any) -> None:
    print(json.dumps(payload, indent=2, default=str))


def cmd_serve(args: argparse.Namespace) -> int:
    from conveyor.serving.gateway import GatewayConfig
    from conveyor.serving.schema import MAX_STRING_BYTES
    from conveyor.serving.server import serve

    token = _token(args)
    if not token:
        raise SystemExit("set CONVEYOR_GATEWAY_TOKEN (or --token): the admin API never runs without a token")
    # Before torch/numpy load: intra-op thread pools that outnumber free cores spin against each
    # other and turn a 1 ms batch into 100 ms; the gateway gets its parallelism from batching.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    if args.log_fsync and not args.log_durable:
        raise SystemExit("--log-fsync needs --log-durable: it is the spool that is fsynced")
    if args.log_durable and args.log_url == "none":
        raise SystemExit("--log-durable needs an inference log: --log-url is 'none'")
    config = GatewayConfig(
        admin_token=token,
        log_url=None if args.log_url == "none" else args.log_url,
        log_flush_interval_s=args.log_flush_interval_s,
        log_max_queued_rows=args.log_max_queued_rows,
        log_spool_dir=args.log_spool if args.log_durable else None,
        log_fsync=args.log_fsync,
        max_body_bytes=args.max_body_bytes,
        max_batch_rows=args.max_batch_rows,
        max_string_bytes=args.max_string_bytes or MAX_STRING_BYTES,
        keep_previous_s=args.keep_previous_s,
        store_url=args.store,
        **({"replica_id": args.replica_id} if args.replica_id else {}),
    )
    if args.store.startswith("sqlite:///"):
        Path(args.store.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    serve(
        config,
        _pairs(args.deploy),
        host=args.host,
        port=args.port,
        tracking_uri=args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"),
        fail_on_load_error=args.fail_on_load_error,
        controller=args.controller,
    )
    return 0


def store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        default=os.environ.get("CONVEYOR_GATEWAY_STORE", DEFAULT_STORE),
        help="desired state of the deployments: sqlite:///FILE for one gateway, "
        "postgresql://USER@HOST/DB for replicas (default $CONVEYOR_GATEWAY_STORE or %(default)s)",
    )


def cmd_controller(args: argparse.Namespace) -> int:
    from conveyor.serving.server import run_controller

    run_controller(
        args.store, args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"), args.holder, args.lease_s
    )
    return 0


def _client(args: argparse.Namespace):
    from conveyor.clients.gateway import GatewayClient

    return GatewayClient(
        args.gateway or os.environ.get("CONVEYOR_GATEWAY_URL", DEFAULT_GATEWAY), _token(args)
    )


def rollout_spec(args: argparse.Namespace) -> dict[str, Any]:
    analysis = {
        "interval_s": args.interval,
        "count": args.count,
        "failure_limit": args.failure_limit,
        "min_requests": args.min_requests,
        "max_error_rate": args.max_error_rate,
        "max_score_shift": args.max_score_shift,
    }
    return {
        "model_uri": args.model_uri,
        "strategy": args.strategy,
        "steps": args.steps,
        "keep_previous_s": args.keep_previous_s,
        "shadow_fraction": args.shadow_fraction,
        "analysis": analysis,
    }


def cmd_deploy(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.slot or not client.exists(args.name):
            _print(client.deploy_slot(args.name, args.model_uri, args.slot or "stable"))
            return 0
        client.start_rollout(args.name, rollout_spec(args))
        if not args.wait:
            _print(client.deployment(args.name)["rollout"])
            return 0

        def show(t: dict[str, Any]) -> None:
            print(
                f"{t['at']}  {t['from']} -> {t['to']}  (canary {t['canary_weight']}%)  {t['reason']}",
                flush=True,
            )

        rollout = client.wait_rollout(args.name, timeout=args.timeout, progress=show)
        return 0 if rollout["state"] in ("succeeded", "switched") else 1


def cmd_rollback(args: argparse.Namespace) -> int:
    with _client(args) as client:
        deployment = client.rollback(args.name, args.model_uri)
    stable = deployment["slots"].get("stable", {})
    print(f"{args.name}: stable now serves version {stable.get('model_version')}")
    if args.registry_model:
        from mlflow import MlflowClient

        from conveyor.core import registry

        entry = registry.rollback(
            MlflowClient(tracking_uri=args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")),
            args.registry_model,
            reason=args.reason,
            actor=os.environ.get("USER", "cli"),
            alias=args.alias,
        )
        print(f"registry: {entry.model_name}@{entry.alias} v{entry.previous_version} -> v{entry.version}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print(client.deployment(args.name) if args.name else client.status())
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from conveyor.project.init import InitRequest, init_project
    from conveyor.project.kedro_project import ProjectError, quiet_logging
    from conveyor.project.suite_draft import DraftError

    quiet_logging()
    request = InitRequest(
        dataset=args.dataset,
        label=args.label,
        task=args.task,
        score=args.score,
        decision=args.decision,
        name=args.name,
        sample_rows=args.sample_rows,
    )
    try:
        files = init_project(Path(args.project), request, env=args.env)
    except (ProjectError, DraftError) as exc:
        print(f"conveyor init: {exc}", file=sys.stderr)
        return 1
    root = Path(args.project).resolve()
    for path in files.values():
        print(f"wrote {path.relative_to(root)}")
    print(
        f"next: name your outputs in the kedro: section of {files['contract'].relative_to(root)} "
        f"(the TODO_ values), review the REVIEW values and {files['suite'].relative_to(root)}, "
        "then run `conveyor doctor`"
    )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from conveyor.project.doctor import check_project
    from conveyor.project.kedro_project import quiet_logging

    quiet_logging()
    findings = check_project(Path(args.project), env=args.env)
    print(f"conveyor doctor: {Path(args.project).resolve()}")
    for finding in findings:
        print(finding.line())
    problems = sum(not f.ok for f in findings)
    print(f"{problems} problem{'s' if problems != 1 else ''}" if problems else "no problems")
    return 1 if problems else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from conveyor import demo

    return demo.main(args.rest)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="conveyor", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)

    def project_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--project", default=".", help="the Kedro project's folder (default: here)")
        p.add_argument("--env", help="Kedro configuration environment (default: the project's)")

    init = sub.add_parser("init", help="add Conveyor to this Kedro project: contract, GX suite, DAG file")
    init.add_argument("--dataset", required=True, help="catalog entry of the input table to gate")
    init.add_argument("--label", required=True, help="its column holding the truth")
    init.add_argument("--task", required=True, choices=TASKS)
    init.add_argument("--score", required=True, help="the model output column metrics and drift watch")
    init.add_argument("--decision", help="the output column with the predicted class (classifiers)")
    init.add_argument("--name", help="registered model name (default: the project's package)")
    init.add_argument("--sample-rows", type=int, default=10_000, help="rows the suite is drafted from")
    project_args(init)
    init.set_defaults(func=cmd_init)

    doctor = sub.add_parser("doctor", help="check this project: contract, catalog, suites, MLflow")
    project_args(doctor)
    doctor.set_defaults(func=cmd_doctor)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--tracking-uri", help="MLflow tracking/registry URI (default $MLFLOW_TRACKING_URI)")
    serve.add_argument("--deploy", action="append", default=[], metavar="NAME=MODEL_URI", help="repeatable")
    serve.add_argument(
        "--log-url", default="var/inference-log", help="fsspec URL of the inference log, or 'none'"
    )
    serve.add_argument(
        "--log-flush-interval-s",
        type=_positive_float,
        default=1.0,
        help="seconds between inference-log writes: what a crash loses without --log-durable",
    )
    serve.add_argument(
        "--log-max-queued-rows", type=int, default=100_000, help="rows past it are dropped (and counted)"
    )
    serve.add_argument(
        "--log-durable",
        action="store_true",
        help="append every answered row to a local spool before answering; replayed after a crash",
    )
    serve.add_argument(
        "--log-spool",
        default="var/inference-spool",
        help="local folder of the durable spool (one per gateway)",
    )
    serve.add_argument(
        "--log-fsync", action="store_true", help="with --log-durable: fsync the spool per request"
    )
    serve.add_argument(
        "--fail-on-load-error",
        action="store_true",
        help="exit at the first --deploy that does not load (sandboxes); by default the others serve",
    )
    serve.add_argument("--max-body-bytes", type=int, default=1 << 20)
    serve.add_argument("--max-batch-rows", type=int, default=2048)
    serve.add_argument(
        "--max-string-bytes",
        type=int,
        help="longest string feature value (UTF-8 bytes) a request may carry (default 1024); longer: 422",
    )
    serve.add_argument("--keep-previous-s", type=float, default=300.0)
    serve.add_argument("--threads", type=int, default=1, help="intra-op threads of numeric libraries (torch)")
    serve.add_argument("--token", help="admin token (default $CONVEYOR_GATEWAY_TOKEN)")
    store_arg(serve)
    serve.add_argument(
        "--replica-id",
        help="this replica's name in the store (default <host>-<pid>); replicas of one store differ",
    )
    serve.add_argument(
        "--no-controller",
        dest="controller",
        action="store_false",
        help="serve only: a separate `conveyor controller` drives rollouts (several replicas)",
    )
    serve.set_defaults(func=cmd_serve)

    controller = sub.add_parser(
        "controller",
        help="drive the rollouts of every replica on a shared store",
        description="One leads (it holds the store's lease); more may stand by and take over. "
        "Example: conveyor controller --store postgresql://conveyor@db/conveyor",
    )
    store_arg(controller)
    controller.add_argument(
        "--tracking-uri", help="MLflow tracking/registry URI (default $MLFLOW_TRACKING_URI)"
    )
    controller.add_argument("--id", dest="holder", help="this controller's name on the lease")
    controller.add_argument(
        "--lease-s",
        type=_positive_float,
        default=3.0,
        help="seconds a dead leader's lease holds before a standby takes over",
    )
    controller.set_defaults(func=cmd_controller)

    def gateway_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--gateway", help=f"gateway URL (default $CONVEYOR_GATEWAY_URL or {DEFAULT_GATEWAY})")
        p.add_argument("--token", help="admin token (default $CONVEYOR_GATEWAY_TOKEN)")

    deploy = sub.add_parser("deploy", help="deploy a version: first load, or a rollout")
    deploy.add_argument("name")
    deploy.add_argument("model_uri", help="e.g. models:/my_model@challenger")
    deploy.add_argument("--strategy", choices=["canary", "blue_green", "shadow"], default="canary")
    deploy.add_argument(
        "--slot", choices=["stable", "canary", "shadow", "staging"], help="just load into a slot"
    )
    deploy.add_argument("--steps", default="10,50,100")
    deploy.add_argument("--interval", type=float, default=30.0, help="seconds per analysis measurement")
    deploy.add_argument("--count", type=int, default=3, help="measurements per step")
    deploy.add_argument("--failure-limit", type=int, default=0)
    deploy.add_argument("--min-requests", type=int, default=20)
    deploy.add_argument("--max-error-rate", type=float, default=0.01)
    deploy.add_argument("--max-score-shift", type=float, default=0.3)
    deploy.add_argument("--shadow-fraction", type=float, default=0.1)
    deploy.add_argument("--keep-previous-s", type=float, default=300.0)
    deploy.add_argument("--wait", action="store_true", help="follow the rollout; exit 1 unless it succeeds")
    deploy.add_argument("--timeout", type=float, default=3600.0)
    gateway_args(deploy)
    deploy.set_defaults(func=cmd_deploy)

    rollback = sub.add_parser("rollback", help="back to the previous version (and registry alias)")
    rollback.add_argument("name")
    rollback.add_argument(
        "--model-uri", help="version to roll back to when the previous one is no longer warm"
    )
    rollback.add_argument("--registry-model", help="also restore this registered model's alias")
    rollback.add_argument("--alias", default="champion")
    rollback.add_argument("--reason", default="rollback from the conveyor CLI")
    rollback.add_argument("--tracking-uri")
    gateway_args(rollback)
    rollback.set_defaults(func=cmd_rollback)

    status = sub.add_parser("status", help="deployments, slots, weights and rollouts")
    status.add_argument("name", nargs="?")
    gateway_args(status)
    status.set_defaults(func=cmd_status)

    demo = sub.add_parser("demo", help="the end-to-end demo (same as make demo)")
    demo.add_argument("rest", nargs=argparse.REMAINDER)
    demo.set_defaults(func=cmd_demo)
    return top


def main(argv: list[str] | None = None) -> int:
    from conveyor.clients.gateway import GatewayClientError

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["demo"]:
        # The demo parses its own options (conveyor demo --help); argparse here would claim them.
        return cmd_demo(argparse.Namespace(rest=argv[1:]))
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except GatewayClientError as exc:
        print(f"conveyor {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
