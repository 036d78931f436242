import json

from factories import trainingjob_spec as spec
from mlcycle.conditions import find
from mlcycle.trainingjob.status import key_metric, training_status


def job(status=None, suspend=False):
    return {"spec": {"suspend": suspend}, "status": status or {}}


def pod(name="w-0", phase="Running", conditions=None, container_state=None, index="0"):
    status = {"phase": phase, "conditions": conditions or []}
    if container_state:
        status["containerStatuses"] = [{"name": "trainer", "state": container_state}]
    return {"metadata": {"name": name, "annotations": {"batch.kubernetes.io/job-completion-index": index}},
            "status": status}


def cond(status, type_):
    return find(status["conditions"], type_)["status"]


def test_no_job_yet_is_pending_and_reconciling():
    s = training_status(spec(), 1, None, [], None)
    assert s["phase"] == "Pending" and s["observedGeneration"] == 1
    assert cond(s, "Reconciling") == "True" and cond(s, "Ready") == "False" and cond(s, "Stalled") == "False"


def test_unschedulable_pod_says_why():
    unsched = pod(phase="Pending", conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                                 "message": "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."}])
    s = training_status(spec(), 1, job({"active": 1, "startTime": "2026-01-01T00:00:00Z"}), [unsched], None)
    assert s["phase"] == "Pending"
    assert find(s["conditions"], "Ready")["reason"] == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in s["message"]


def test_image_pull_backoff_is_reported():
    p = pod(phase="Pending", container_state={"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}})
    s = training_status(spec(), 1, job({"active": 1}), [p], None)
    assert find(s["conditions"], "Ready")["reason"] == "ImagePullBackOff" and "no such image" in s["message"]


def test_running_counts_workers():
    s = training_status(spec(workers=2), 2, job({"active": 2, "ready": 1, "startTime": "t"}),
                        [pod(), pod("w-1", index="1")], None)
    assert s["phase"] == "Running" and s["workers"] == {"active": 2, "ready": 1, "succeeded": 0, "failed": 0}
    assert s["attempts"] == 1 and cond(s, "Running") == "True"


def test_success_takes_metrics_and_artifact_from_worker_zero_termination_message():
    message = json.dumps({"metrics": {"val_accuracy": 0.97}, "artifact": {
        "uri": "s3://models/iris/model.pt", "digest": "sha256:" + "a" * 64, "size": 1234, "format": "torchscript"}})
    done = pod(phase="Succeeded", container_state={"terminated": {"exitCode": 0, "message": message}})
    other = pod("w-1", phase="Succeeded", index="1", container_state={"terminated": {"exitCode": 0}})
    j = job({"succeeded": 2, "completionTime": "2026-01-01T01:00:00Z", "startTime": "2026-01-01T00:00:00Z",
             "conditions": [{"type": "Complete", "status": "True"}]})
    s = training_status(spec(workers=2), 1, j, [other, done], None)
    assert s["phase"] == "Succeeded" and s["metrics"] == {"val_accuracy": 0.97}
    assert s["artifact"] == {"uri": "s3://models/iris/model.pt", "digest": "sha256:" + "a" * 64, "size": 1234}
    assert s["completionTime"] == "2026-01-01T01:00:00Z"
    assert s["keyMetric"] == "val_accuracy=0.97"  # the printer column
    assert cond(s, "Ready") == "True" and cond(s, "Reconciling") == "False"


def test_trainer_error_reason_and_message_reach_status_on_failure():
    message = json.dumps({"error": {"reason": "DatasetNotFound", "message": "s3://data/x.csv: NoSuchKey"}})
    failed = pod(phase="Failed", container_state={"terminated": {"exitCode": 1, "reason": "Error", "message": message}})
    j = job({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                          "message": "Job has reached the specified backoff limit"}]})
    s = training_status(spec(), 1, j, [failed], None)
    assert s["phase"] == "Failed" and cond(s, "Stalled") == "True"
    assert find(s["conditions"], "Ready")["reason"] == "DatasetNotFound"
    assert "NoSuchKey" in s["message"] and "exited with code 1" in s["message"]


def test_oom_killed_names_the_fix():
    failed = pod(phase="Failed", container_state={"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
    j = job({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]})
    s = training_status(spec(), 1, j, [failed], None)
    assert "OOMKilled" in s["message"] and "spec.resources.memory" in s["message"]


def test_deadline_exceeded():
    j = job({"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                             "message": "Job was active longer than specified deadline"}]})
    s = training_status(spec(), 1, j, [], None)
    assert find(s["conditions"], "Ready")["reason"] == "DeadlineExceeded"
    assert "activeDeadlineSeconds" in s["message"]


def test_suspended_by_spec_or_by_someone_else():
    mine = training_status(spec(runPolicy={"suspend": True}), 1, job(suspend=True), [], None)
    assert mine["phase"] == "Suspended" and "spec.runPolicy.suspend" in mine["message"]
    theirs = training_status(spec(), 1, job(suspend=True), [], None)
    assert theirs["phase"] == "Suspended" and "another controller" in theirs["message"]


def test_invalid_spec_fails_with_field_named():
    s = training_status(spec(), 3, None, [], None, invalid=["spec.env[0].name: PET_NNODES is set by the operator"])
    assert s["phase"] == "Failed" and find(s["conditions"], "Stalled")["reason"] == "InvalidSpec"
    assert "spec.env[0].name" in s["message"]


def test_same_observation_twice_gives_the_same_status():
    args = (spec(), 1, job({"active": 1}), [pod()], None)
    first = training_status(*args)
    second = training_status(spec(), 1, job({"active": 1}), [pod()], first)
    assert first == second


def test_results_survive_pods_going_away():
    previous = {"metrics": {"loss": 0.1}, "artifact": {"uri": "s3://m/a"}, "modelVersionRef": {"name": "m-v1"}}
    j = job({"conditions": [{"type": "Complete", "status": "True"}], "completionTime": "t"})
    s = training_status(spec(), 1, j, [], previous)
    assert s["metrics"] == {"loss": 0.1} and s["modelVersionRef"] == {"name": "m-v1"}


def test_the_dataset_digest_the_trainer_read_is_kept_for_lineage():
    digest = "sha256:" + "b" * 64
    message = json.dumps({"metrics": {}, "artifact": {"uri": "s3://m/a/model.pt"}, "datasetDigest": digest})
    done = pod(phase="Succeeded", container_state={"terminated": {"exitCode": 0, "message": message}})
    j = job({"conditions": [{"type": "Complete", "status": "True"}], "completionTime": "t"})
    assert training_status(spec(), 1, j, [done], None)["datasetDigest"] == digest


def test_running_never_goes_back_to_pending_while_the_job_counts_a_finished_worker():
    running = training_status(spec(), 1, job({"active": 1, "ready": 1, "startTime": "t"}), [pod()], None)
    assert running["phase"] == "Running"
    # The trainer exited; the Job has not counted it yet: no active pod, no Complete condition.
    between = training_status(spec(), 1, job({"active": 0, "startTime": "t"}),
                              [pod(phase="Succeeded", container_state={"terminated": {"exitCode": 0}})], running)
    assert between["phase"] == "Running" and "waiting for the workers" not in between["message"]
    fresh = training_status(spec(), 1, job({"active": 0, "startTime": "t"}), [], None)
    assert fresh["phase"] == "Pending"


def test_results_the_status_schema_would_refuse_are_dropped_not_written():
    from mlcycle.trainingjob.status import reported_results

    out = reported_results({"metrics": {"acc": 0.9, "loss": float("nan"), "note": "x", "flag": True},
                            "artifact": {"uri": "/tmp/model.pt", "digest": "md5:1"}, "datasetDigest": "abc"})
    assert out == {"metrics": {"acc": 0.9}}
    out = reported_results({"artifact": {"uri": "s3://models/a.pt", "digest": "md5:1", "size": -1}})
    assert out == {"artifact": {"uri": "s3://models/a.pt"}}


def test_ttl_expiry():
    from datetime import UTC, datetime

    from mlcycle.trainingjob.status import ttl_expired

    s = spec(runPolicy={"ttlSecondsAfterFinished": 60})
    done = {"phase": "Succeeded", "completionTime": "2026-01-01T00:00:00Z"}
    assert not ttl_expired(s, done, datetime(2026, 1, 1, 0, 0, 59, tzinfo=UTC))
    assert ttl_expired(s, done, datetime(2026, 1, 1, 0, 1, 0, tzinfo=UTC))
    assert not ttl_expired(spec(), done, datetime(2027, 1, 1, tzinfo=UTC))


def test_a_missing_reference_stalls_the_job_with_the_field_named():
    missing = ["spec.priorityClassName: PriorityClass gold does not exist"]
    s = training_status(spec(), 1, job({}), [], None, missing=missing)
    assert s["phase"] == "Pending" and s["message"] == missing[0]
    assert find(s["conditions"], "Stalled")["status"] == "True" and cond(s, "Reconciling") == "False"
    assert find(s["conditions"], "Ready")["reason"] == "ReferenceNotFound"


def test_next_reconcile_is_the_resync_the_ttl_or_the_registration_retry_whichever_comes_first():
    from datetime import UTC, datetime

    from mlcycle.trainingjob.status import RESYNC_SECONDS, next_reconcile

    now = datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)
    done = {"phase": "Succeeded", "completionTime": "2026-01-01T00:00:00Z"}
    assert next_reconcile(spec(), {"phase": "Running"}, now, None) == RESYNC_SECONDS
    assert next_reconcile(spec(), done, now, None) is None
    assert next_reconcile(spec(runPolicy={"ttlSecondsAfterFinished": 86400}), done, now, None) == 86390
    assert next_reconcile(spec(runPolicy={"ttlSecondsAfterFinished": 86400}), done, now, 4.0) == 4.0
    assert next_reconcile(spec(runPolicy={"ttlSecondsAfterFinished": 5}), done, now, None) == -5


def test_key_metric_is_the_gated_metric_else_the_first_validation_metric():
    metrics = {"train_loss": 0.31, "val_loss": 0.2, "val_accuracy": 0.93456}
    assert key_metric(spec(), metrics) == "val_accuracy=0.9346"
    gated = spec(registerModel={"name": "iris", "validation": {"thresholds": [
        {"metric": "val_loss", "op": "<=", "value": 0.5}]}})
    assert key_metric(gated, metrics) == "val_loss=0.2"
    assert key_metric(spec(), {"epoch": 3, "train_loss": 0.31}) == "train_loss=0.31"  # a user image's own names
    assert key_metric(spec(), None) is None and key_metric(None, {"val_loss": 1.0}) == "val_loss=1"


def test_no_metrics_no_key_metric():
    assert "keyMetric" not in training_status(spec(), 1, job({"active": 1}), [pod()], None)


def test_the_evaluation_reported_reaches_status_and_a_malformed_one_is_dropped():
    evaluation = {"slices": [{"feature": "region", "value": "north", "metrics": {"count": 3, "accuracy": 1.0}}],
                  "fairness": [{"feature": "region", "gaps": {"accuracy_difference": 0.2}}]}
    j = job({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
    for reported, kept in ((evaluation, evaluation), ({"slices": [{"feature": "region"}]}, None)):
        message = json.dumps({"metrics": {"val_accuracy": 0.9}, "evaluation": reported})
        done = pod(phase="Succeeded", container_state={"terminated": {"exitCode": 0, "message": message}})
        s = training_status(spec(), 1, j, [done], None)
        assert s.get("evaluation") == kept and s["metrics"] == {"val_accuracy": 0.9}
    # ... and it outlives the pod, like the metrics.
    assert training_status(spec(), 1, j, [], {"evaluation": evaluation})["evaluation"] == evaluation
