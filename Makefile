# Conveyor — two commands on a fresh clone: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1
export MLFLOW_DISABLE_TELEMETRY := true
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: venv test test-ts lint pytest demo airflow down constraints clean apt bench

# Who runs Airflow's tasks in `make airflow` / `make demo`: local (LocalExecutor) or celery
# (CeleryExecutor: Debian's redis-server as the broker, two named Celery workers).
EXECUTOR ?= local
# How many gateway replicas `make demo` serves through: 1 (one process on SQLite) or more
# (nginx in front of that many replicas on PostgreSQL, one rollout controller).
GATEWAY_REPLICAS ?= 1

venv: $(STAMP)

# torch first and alone: `torch==2.13.0` is the CPU wheel on local disk; any other spec pulls CUDA.
$(STAMP): pyproject.toml constraints.txt kedro_project/pyproject.toml examples/bike_rentals/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]' -e ./kedro_project -e ./examples/bike_rentals
	@touch $@

# Debian packages the tests drive for real (browser, Prometheus, load generator); installed only when missing.
apt:
	@bash scripts/ensure_apt.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check provider jupyter_ext/conveyor_jupyter kedro_project/src kedro_project/tests examples dags tests benchmarks

pytest: venv apt
	@bash scripts/run_pytest.sh $(PYTEST_ARGS)

# TypeScript unit tests of the JupyterLab extension (node_modules come from `pip install -e .`).
test-ts: venv
	cd jupyter_ext && PATH="$(CURDIR)/$(BIN):$$PATH" jlpm install --immutable && PATH="$(CURDIR)/$(BIN):$$PATH" jlpm test

test: lint pytest test-ts

# The whole loop unattended (~10-15 min on 2 cores); services stay up until `make down`.
# Options: make demo EXECUTOR=celery GATEWAY_REPLICAS=2 DEMO_ARGS="--max-rows 4000 --rate 20"
# (see python -m conveyor.demo --help).
demo: venv
	$(BIN)/python -m conveyor.demo --executor $(EXECUTOR) --gateway-replicas $(GATEWAY_REPLICAS) $(DEMO_ARGS)

# Local Airflow (PostgreSQL, api-server, scheduler, dag-processor, triggerer) + MLflow under var/, for the UI;
# make airflow EXECUTOR=celery adds Redis and two Celery workers.
airflow: venv
	$(BIN)/python -m conveyor.local.airflow --executor $(EXECUTOR)

# Stops every service recorded in var/services.json (Airflow, PostgreSQL, MLflow, gateway, ...).
down:
	-$(BIN)/python -m conveyor.local.services

bench: venv
	$(BIN)/python benchmarks/pipeline.py

# Re-resolve the whole stack and write the pins (needs the registries).
constraints:
	rm -rf /tmp/conveyor-resolve && $(PYTHON) -m venv /tmp/conveyor-resolve
	/tmp/conveyor-resolve/bin/pip install --quiet torch==2.13.0
	/tmp/conveyor-resolve/bin/pip install --quiet -e '.[dev]' -e ./kedro_project -e ./examples/bike_rentals 'numpy<2'
	{ echo "# The whole resolved stack (Python 3.11). Regenerate with: make constraints"; \
	  /tmp/conveyor-resolve/bin/pip freeze --exclude-editable | sed 's/+cpu$$//'; } > constraints.txt

clean: down
	rm -rf var $(VENV)
