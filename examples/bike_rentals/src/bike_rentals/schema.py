"""The columns of the hourly Capital Bikeshare table and what the model does with each.

One place for these names: the feature encoder, the splits, the MLflow signature and the tests
all read them here, so a column cannot mean one thing in training and another in serving.
"""

from __future__ import annotations

# The truth: rentals started in the hour, casual plus registered riders.
LABEL = "bikers"
# The served model's one output column (the contract's score).
PREDICTION = "predicted_bikers"
# When the hour began (ISO 8601, local time of Washington, D.C.); added by the loader from the
# table's day of year and hour, it orders rows for the split and names partitions.
TIMESTAMP = "timestamp"
# The label's two parts: known only after the hour, so never an input (they sum to the label).
LABEL_PARTS = ("casual", "registered")

# Inputs the model one-hot encodes, with every level the source can have. Fixed vocabularies
# rather than levels seen in training: a month of data lacks most months and some weather, and
# the encoder must still give an unseen level its own (untrained, zero) column, not an error.
CATEGORIES: dict[str, tuple] = {
    "season": (1, 2, 3, 4),
    "mnth": ("Jan", "Feb", "March", "April", "May", "June", "July", "Aug", "Sept", "Oct", "Nov", "Dec"),
    "hr": tuple(range(24)),
    "weekday": tuple(range(7)),
    "weathersit": ("clear", "cloudy/misty", "light rain/snow", "heavy rain/snow"),
}
# 0/1 flags, used as they are.
FLAGS = ("holiday", "workingday")
# Weather readings, normalised by the source to [0, 1] (temp/41 C, atemp/50 C, hum/100,
# windspeed/67); standardised with training statistics.
NUMERIC = ("temp", "atemp", "hum", "windspeed")

# What a client sends, in this order. The table's day of year is left out: in a time-ordered
# split every held-out day lies beyond the training days, so the model could only extrapolate it;
# season and month carry the time of year instead.
INPUTS: tuple[str, ...] = (*CATEGORIES, *FLAGS, *NUMERIC)
INTEGER_INPUTS = ("season", "hr", "weekday", *FLAGS)
TEXT_INPUTS = ("mnth", "weathersit")
