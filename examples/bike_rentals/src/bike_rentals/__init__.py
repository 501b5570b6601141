"""bike-rentals: a Kedro project forecasting hourly Capital Bikeshare rentals with a torch MLP."""

__version__ = "0.1"
