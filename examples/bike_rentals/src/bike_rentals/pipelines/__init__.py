"""The project's pipelines: ``data_processing``, ``training`` and ``evaluation``."""
