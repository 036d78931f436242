"""The Dockerfile, the chart and the operator agree on the mlcycle image: its entrypoint is `mlcycle` (the chart
passes only args; the operator's pods and the local runtime rely on it), its user is the chart's runAsUser, and the
tag the chart and the operator default to is this release's."""

import json
import shlex
from pathlib import Path

import yaml

from factories import trainingjob_spec
from mlcycle import __version__, chartvalues, images
from mlcycle.localdev.runtime_spec import container_argv
from mlcycle.trainingjob import manifests

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> dict[str, str]:
    """The last value of each Dockerfile instruction (continuation lines joined)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out[word.upper()] = rest.strip()
    return out


def test_the_entrypoint_is_mlcycle_and_the_chart_and_the_runtime_rely_on_it():
    assert json.loads(instructions()["ENTRYPOINT"]) == ["mlcycle"]
    deployment = (ROOT / "charts" / "mlcycle" / "templates" / "deployment.yaml").read_text()
    assert "command:" not in deployment and "- run\n" in deployment  # `mlcycle run` through the entrypoint
    assert container_argv({"args": ["run"]}, "mlcycle") == ["mlcycle", "run"]  # the local runtime's view
    trainer = manifests.desired_job("t", "ns", "u", trainingjob_spec())["spec"]["template"]["spec"]["containers"][0]
    assert trainer["command"][0] == "mlcycle"


def test_the_user_is_the_charts_non_root_user():
    user = instructions()["USER"]
    assert user == f"{chartvalues.IMAGE_UID}:{chartvalues.IMAGE_UID}"  # numeric, so runAsNonRoot can check it
    values = yaml.safe_load((ROOT / "charts" / "mlcycle" / "values.yaml").read_text())
    pod = values["podSecurityContext"]
    assert pod["runAsUser"] == pod["runAsGroup"] == chartvalues.IMAGE_UID and pod["runAsNonRoot"]
    run = instructions()["RUN"]
    assert f"--uid {chartvalues.IMAGE_UID}" in shlex.join(shlex.split(run))


def test_the_default_image_is_this_release_in_the_chart_and_the_operator():
    chart = yaml.safe_load((ROOT / "charts" / "mlcycle" / "Chart.yaml").read_text())
    values = yaml.safe_load((ROOT / "charts" / "mlcycle" / "values.yaml").read_text())
    assert chart["appVersion"] == __version__
    assert images.RELEASE_IMAGE == f"{values['image']['repository']}:{chart['appVersion']}"
