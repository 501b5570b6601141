"""Kedro project package: flight delay classifier."""
