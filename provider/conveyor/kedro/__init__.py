"""Conveyor's Kedro plugin: discovered through the ``kedro.hooks`` entry point, configured by the
``kedro:`` section of a project's ``conf/base/conveyor.yml`` (docs/kedro.md)."""
