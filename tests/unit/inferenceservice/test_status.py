"""The serving plan: what is applied, deleted and reported for each state of a version switch."""

from datetime import UTC, datetime, timedelta

from mlcycle.inferenceservice.status import plan, pod_problem
from unit.inferenceservice.factories import deployment, isvc, model_version

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def run(obj, versions, deployments=(), pods=(), now=NOW, hpa=None, canary_service=None):
    return plan(obj, list(versions), list(deployments), list(pods), hpa, "mlcycle:test", now, drain_seconds=10,
                canary_service=canary_service)


def kinds(p):
    return [(o["kind"], o["metadata"]["name"]) for o in p.apply]


def cond(p, type_):
    return next(c for c in p.status["conditions"] if c["type"] == type_)


def test_waits_for_an_alias_holder_without_creating_anything():
    p = run(isvc(), [model_version(1, phase="Verifying", aliases=())])
    assert p.apply == [] and p.status["phase"] == "Pending"
    assert cond(p, "Ready")["status"] == "False" and "holds alias production" in p.status["message"]


def test_first_version_is_served_at_once_and_ready_when_loaded():
    p = run(isvc(), [model_version(1, aliases=["production"])])
    assert kinds(p) == [("Deployment", "iris-iris-v1"), ("Service", "iris")]
    assert p.status["phase"] == "Loading" and p.status["servedModelVersion"] == "iris-v1"
    assert p.status["selector"] == "mlcycle.io/inferenceservice=iris,mlcycle.io/model-version=iris-v1"
    assert p.status["url"] == "http://iris.ns.svc:8000" and p.status["grpcUrl"] == "iris.ns.svc:8001"

    p = run(isvc(p.status), [model_version(1, aliases=["production"])], [deployment("iris-v1", ready=1)])
    assert p.status["phase"] == "Ready" and p.status["readyReplicas"] == 1
    assert cond(p, "Ready")["status"] == "True" and cond(p, "ModelLoaded")["status"] == "True"
    assert cond(p, "Reconciling")["status"] == "False"
    assert p.status["traffic"] == [{"modelVersion": "iris-v1", "percent": 100}]


def serving_v1():
    v1 = model_version(1, aliases=["production"])
    first = run(isvc(), [v1])
    return run(isvc(first.status), [v1], [deployment("iris-v1", ready=1)]).status


def test_alias_move_starts_the_new_version_beside_the_old_and_switches_only_when_ready():
    status = serving_v1()
    versions = [model_version(1), model_version(2, aliases=["production"])]
    p = run(isvc(status), versions, [deployment("iris-v1", ready=1)])
    assert ("Deployment", "iris-iris-v2") in kinds(p)
    service = next(o for o in p.apply if o["kind"] == "Service")
    assert service["spec"]["selector"]["mlcycle.io/model-version"] == "iris-v1"  # not yet
    assert p.status["phase"] == "Ready" and cond(p, "Reconciling")["status"] == "True"
    assert "rolling out iris-v2" in p.status["message"] and p.delete == []

    p = run(isvc(p.status), versions, [deployment("iris-v1", ready=1), deployment("iris-v2", ready=1)])
    service = next(o for o in p.apply if o["kind"] == "Service")
    assert service["spec"]["selector"]["mlcycle.io/model-version"] == "iris-v2"
    assert p.status["servedModelVersion"] == "iris-v2" and p.status["previousModelVersion"] == "iris-v1"
    assert p.delete == [] and p.requeue_after == 10  # v1 drains first
    assert ("Normal", "Switched", "traffic moved from iris-v1 to iris-v2") in p.events

    later = NOW + timedelta(seconds=11)
    p = run(isvc(p.status), versions, [deployment("iris-v1", ready=1), deployment("iris-v2", ready=1)], now=later)
    assert p.delete == [("apps/v1", "Deployment", "iris-iris-v1")]
    assert "previousModelVersion" not in p.status


def test_a_version_that_is_not_ready_is_never_served():
    status = serving_v1()
    versions = [model_version(1, aliases=["production"]), model_version(2, phase="Rejected", message="bad")]
    p = run(isvc(status, model={"name": "iris", "version": 2}), versions, [deployment("iris-v1", ready=1)])
    assert ("Deployment", "iris-iris-v2") not in kinds(p)
    assert p.status["servedModelVersion"] == "iris-v1" and p.status["phase"] == "Ready"
    assert "ModelVersion iris-v2 is Rejected: bad; it is not served" in p.status["message"]


def failed_fetch_pod(version: str) -> dict:
    message = '{"error":{"reason":"DigestMismatch","message":"s3://m/model.pt has digest sha256:bb"}}'
    return {"metadata": {"name": f"iris-{version}-abc", "labels": {"mlcycle.io/model-version": version}},
            "status": {"initContainerStatuses": [{"name": "fetch-model", "state": {"waiting": {
                "reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"exitCode": 1, "message": message}}}]}}


def test_digest_mismatch_of_the_new_version_keeps_the_old_one_serving():
    status = serving_v1()
    versions = [model_version(1), model_version(2, aliases=["production"])]
    p = run(isvc(status), versions, [deployment("iris-v1", ready=1), deployment("iris-v2", ready=0)],
            [failed_fetch_pod("iris-v2")])
    assert p.status["servedModelVersion"] == "iris-v1" and p.status["phase"] == "Ready"
    assert cond(p, "Stalled")["status"] == "True" and "DigestMismatch" in p.status["message"]
    assert ("Warning", "DigestMismatch", p.status["message"].split("DigestMismatch: ")[1]) in p.events


def test_digest_mismatch_with_nothing_else_to_serve_fails_naming_it():
    p = run(isvc({"servedModelVersion": "iris-v1"}), [model_version(1, aliases=["production"])],
            [deployment("iris-v1", ready=0)], [failed_fetch_pod("iris-v1")])
    assert p.status["phase"] == "Failed" and cond(p, "ModelLoaded")["reason"] == "DigestMismatch"
    assert cond(p, "Ready")["status"] == "False"


def test_triton_load_failure_reports_tritons_reason():
    log = "I1126 model loading\nE1126 failed to load 'iris' version 1: Internal: bad zip\nE1126 exiting"
    pod = {"metadata": {"name": "p"}, "status": {"containerStatuses": [{"name": "triton", "state": {
        "terminated": {"exitCode": 1, "message": log}}}]}}
    assert pod_problem(pod) == ("ModelLoadFailed", "Triton in pod p exited (1): E1126 failed to load 'iris' "
                                                   "version 1: Internal: bad zip")


def test_autoscaling_adds_an_hpa_and_its_removal_deletes_it():
    v1 = [model_version(1, aliases=["production"])]
    p = run(isvc(autoscaling={"minReplicas": 1, "maxReplicas": 4, "metric": "cpu-utilization", "target": 70}), v1)
    hpa = next(o for o in p.apply if o["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "mlcycle.io/v1alpha1", "kind": "InferenceService",
                                             "name": "iris"}
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    p = run(isvc(), v1, hpa={"metadata": {"name": "iris"}})
    assert ("autoscaling/v2", "HorizontalPodAutoscaler", "iris") in p.delete


def test_invalid_spec_fails_naming_the_field():
    obj = isvc()
    obj["spec"]["runtime"] = {"maxBatchSize": -1}
    p = run(obj, [])
    assert p.status["phase"] == "Failed" and "spec.runtime.maxBatchSize" in p.status["message"]


def test_a_fixed_canary_gets_its_share_once_ready():
    status = serving_v1()
    versions = [model_version(1, aliases=["production"]), model_version(2)]
    obj = isvc(status, canary={"model": {"name": "iris", "version": 2}, "trafficPercent": 20})
    p = run(obj, versions, [deployment("iris-v1", ready=1)])
    assert ("Deployment", "iris-iris-v2") in kinds(p) and ("Service", "iris-canary") in kinds(p)
    assert p.split.canary_percent == 0 and cond(p, "CanaryReady")["status"] == "False"

    p = run(obj, versions, [deployment("iris-v1", ready=1), deployment("iris-v2", ready=1)])
    assert p.split.to_api() == {"canaryUrl": "http://iris-canary.ns.svc:8000", "canaryPercent": 20,
                                "canaryModelVersion": "iris-v2"}
    assert p.status["traffic"] == [{"modelVersion": "iris-v1", "percent": 80},
                                   {"modelVersion": "iris-v2", "percent": 20}]
    assert p.status["canaryModelVersion"] == "iris-v2" and cond(p, "CanaryReady")["status"] == "True"
    assert p.status["servedModelVersion"] == "iris-v1"

    p = run(isvc(p.status), versions, [deployment("iris-v1", ready=1), deployment("iris-v2", ready=1)],
            canary_service={"metadata": {"name": "iris-canary"}})
    assert ("apps/v1", "Deployment", "iris-iris-v2") in p.delete and ("v1", "Service", "iris-canary") in p.delete
    assert p.split.canary_percent == 0 and "canaryModelVersion" not in p.status


ROLLOUT = {"steps": [{"weight": 20, "pause": "10s"}, {"weight": 50, "pause": "10s"}],
           "analysis": {"interval": "10s", "successRateMin": 0.95, "failureLimit": 1}}


def test_a_rollout_walks_its_steps_and_aborts_on_a_failed_analysis():
    from mlcycle.inferenceservice.analysis import Measurement

    status = serving_v1()
    versions = [model_version(1), model_version(2, aliases=["production"])]
    obj = isvc(status, rollout=ROLLOUT)
    both = [deployment("iris-v1", ready=1), deployment("iris-v2", ready=1)]
    p = run(obj, versions, both)
    assert p.status["rollout"]["phase"] == "Progressing" and p.split.canary_percent == 20
    assert p.status["servedModelVersion"] == "iris-v1" and "step 1 of 2" in p.status["message"]

    later = NOW + timedelta(seconds=11)
    p = run(isvc(p.status, rollout=ROLLOUT), versions, both, now=later)
    p = plan(isvc(p.status, rollout=ROLLOUT), versions, both, [], None, "img", later, 10,
             measurement=Measurement(requests=100, failures=40))
    assert p.status["rollout"]["phase"] == "Aborted" and p.split.canary_percent == 0
    aborted = cond(p, "RolloutAborted")
    assert aborted["status"] == "True" and "successRate 0.6000 < successRateMin 0.95" in aborted["message"]
    assert p.status["servedModelVersion"] == "iris-v1"
    assert all(o["metadata"]["name"] != "iris-iris-v2" for o in p.apply if o["kind"] == "Deployment")
    assert ("apps/v1", "Deployment", "iris-iris-v2") in p.delete


def test_with_a_rollout_the_first_version_goes_straight_in():
    p = run(isvc(rollout=ROLLOUT), [model_version(1, aliases=["production"])])
    assert kinds(p) == [("Deployment", "iris-iris-v1"), ("Service", "iris")]
    assert p.status["servedModelVersion"] == "iris-v1" and "rollout" not in p.status
