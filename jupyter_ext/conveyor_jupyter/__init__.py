"""Conveyor in Jupyter: IPython magics, a Jupyter Server extension and a JupyterLab side panel.

``%load_ext conveyor_jupyter`` registers the magics; the server extension is enabled by the
``etc/jupyter/jupyter_server_config.d/conveyor_jupyter.json`` file the wheel installs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_ipython_extension", "unload_ipython_extension"]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "conveyor-jupyter"}]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from conveyor_jupyter.app import ConveyorExtension

    return [{"module": "conveyor_jupyter", "app": ConveyorExtension}]


def load_ipython_extension(ipython: Any) -> None:
    from conveyor_jupyter.magics import ConveyorMagics

    ipython.register_magics(ConveyorMagics(ipython))


def unload_ipython_extension(ipython: Any) -> None:
    from conveyor_jupyter.magics import ConveyorMagics

    ipython.magics_manager.registry.pop(ConveyorMagics.__name__, None)
    ipython.magics_manager.magics["line"].pop("conveyor", None)
    ipython.magics_manager.magics["cell"].pop("conveyor", None)
