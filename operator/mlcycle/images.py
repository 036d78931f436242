"""The images the operator writes into pods, from one place: the chart sets them through the operator's env."""

from __future__ import annotations

import os

from mlcycle.api.trainingjob import DEFAULT_IMAGE


def mlcycle_image() -> str:
    """The mlcycle image (trainer, fetch-model, agent, drift, verify): `MLCYCLE_IMAGE`, else the release's."""
    return os.environ.get("MLCYCLE_IMAGE") or DEFAULT_IMAGE
