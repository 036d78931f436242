"""The images the operator writes into pods, from one place: the chart sets them through the operator's env."""

from __future__ import annotations

import os

from mlcycle import __version__

# The image of this release, for an operator started without MLCYCLE_IMAGE (`mlcycle run` outside the chart).
RELEASE_IMAGE = f"ghcr.io/mlcycle/mlcycle:{__version__}"


def mlcycle_image() -> str:
    """The mlcycle image (trainer, validate-data, fetch-model, agent, drift, verify): `MLCYCLE_IMAGE`, else the
    release's."""
    return os.environ.get("MLCYCLE_IMAGE") or RELEASE_IMAGE
