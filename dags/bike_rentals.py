"""ml_ci, ml_cd and ml_monitor of the second example model, bike_rentals, built by the DAG factory
from examples/bike_rentals/conf/base/conveyor.yml.

Its ``airflow:`` section prefixes the DAG ids (``bike_rentals__ml_ci`` etc.), so they run beside
the demo's in the same Airflow; its Kedro runs go through the connection ``kedro_bike_rentals``
and its rollouts to the gateway deployment ``bikes``. One call: the factory does the rest.
"""

from pathlib import Path

from conveyor.dags import build_dags

build_dags(Path(__file__).parents[1] / "examples/bike_rentals/conf/base/conveyor.yml")
