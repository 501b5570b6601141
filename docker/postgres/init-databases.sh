#!/bin/bash
# Runs once, when the postgres service starts on an empty data volume (docker-entrypoint-initdb.d):
# one role and one database per client, each with its own password from docker/.env.
#   airflow        Airflow's metadata and, through db+postgresql, Celery's task results
#   mlflow         MLflow tracking + registry (artifacts go to the mlflow-artifacts volume)
#   gateway_store  the gateway replicas' and the controller's shared state store
# Changing a password in .env later does not change the role's: ALTER ROLE ... PASSWORD by hand.
set -euo pipefail

create() {
    local role=$1 database=$2 password=$3
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        -v role="$role" -v database="$database" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"database" OWNER :"role";
SQL
}

create airflow airflow "$AIRFLOW_DB_PASSWORD"
create mlflow mlflow "$MLFLOW_DB_PASSWORD"
create gateway gateway_store "$GATEWAY_DB_PASSWORD"
