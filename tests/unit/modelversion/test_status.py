from mlcycle.conditions import condition, find
from mlcycle.modelversion.status import artifact_fields, events, key_metric, model_statuses
from mlcycle.modelversion.verification import VerificationFailed, Verified

DIGEST = "sha256:" + "a" * 64


def mv(version, aliases=(), metrics=None, validation=None, verified=True, status=None, generation=1, **meta):
    verified_cond = {True: condition("ArtifactVerified", True, "Verified", f"{DIGEST}, 10 bytes", 1),
                     False: condition("ArtifactVerified", False, "ArtifactNotFound", "artifact not found", 1),
                     None: None}[verified]
    old = dict(status or {})
    if verified_cond:
        old["conditions"] = [verified_cond] + list(old.get("conditions") or [])
    spec = {"modelName": "iris", "version": version,
            "artifact": {"uri": "s3://models/iris.pt", "format": "torchscript"},
            "storage": {"secretRef": {"name": "s3"}}}
    if aliases:
        spec["aliases"] = list(aliases)
    if metrics:
        spec["metrics"] = metrics
    if validation:
        spec["validation"] = validation
    return {"metadata": {"name": f"iris-v{version}", "generation": generation, **meta}, "spec": spec,
            "status": old}


def test_an_unverified_version_is_verifying_and_reconciling():
    status = model_statuses([mv(1, verified=None)], [])["iris-v1"]
    assert status["phase"] == "Verifying"
    assert find(status["conditions"], "Reconciling")["status"] == "True"
    assert find(status["conditions"], "ArtifactVerified")["status"] == "Unknown"
    assert find(status["conditions"], "Validated")["status"] == "Unknown"


def test_a_healable_artifact_failure_is_failed_but_still_reconciling_not_stalled():
    status = model_statuses([mv(1, aliases=["production"], verified=False)], [])["iris-v1"]
    assert status["phase"] == "Failed"
    assert status["message"] == "artifact not found"
    assert status["aliases"] == []
    assert find(status["conditions"], "Reconciling")["status"] == "True"
    assert find(status["conditions"], "Stalled")["status"] == "False"


def test_a_version_that_fails_a_threshold_is_rejected_with_the_failing_rule():
    validation = {"thresholds": [{"metric": "accuracy", "op": ">=", "value": 0.9}]}
    status = model_statuses([mv(1, ["production"], {"accuracy": 0.85}, validation)], [])["iris-v1"]
    assert status["phase"] == "Rejected"
    assert "accuracy >= 0.9 failed" in status["message"]
    assert status["aliases"] == []
    assert find(status["conditions"], "Validated")["status"] == "False"
    assert find(status["conditions"], "Stalled")["status"] == "True"
    assert [r["passed"] for r in status["validation"]] == [False]


def test_ready_versions_share_aliases_and_the_lower_one_reports_the_conflict():
    statuses = model_statuses([mv(1, ["production", "stable"]), mv(2, ["production"])], [])
    v1, v2 = statuses["iris-v1"], statuses["iris-v2"]
    assert (v1["phase"], v1["aliases"], v2["aliases"]) == ("Ready", ["stable"], ["production"])
    conflict = find(v1["conditions"], "AliasConflict")
    assert conflict["status"] == "True" and "production is held by iris-v2 (version 2)" in conflict["message"]
    assert find(v2["conditions"], "AliasConflict")["status"] == "False"
    assert find(v2["conditions"], "Ready")["status"] == "True"
    assert v2["message"].startswith("ready; aliases: production")


def test_a_challenger_is_compared_with_the_current_alias_holder():
    champion = mv(1, ["production"], {"accuracy": 0.90}, status={"aliases": ["production"]})
    rule = {"champion": {"alias": "production", "metric": "accuracy", "minImprovement": 0.02}}
    better = model_statuses([champion, mv(2, ["production"], {"accuracy": 0.93}, rule)], [])
    assert better["iris-v2"]["phase"] == "Ready" and better["iris-v2"]["aliases"] == ["production"]
    worse = model_statuses([champion, mv(2, ["production"], {"accuracy": 0.91}, rule)], [])
    assert worse["iris-v2"]["phase"] == "Rejected" and worse["iris-v1"]["aliases"] == ["production"]


def test_validation_is_decided_once_per_generation():
    rule = {"champion": {"alias": "production", "metric": "accuracy", "minImprovement": 0.02}}
    decided = {"validation": [{"rule": "r", "passed": True}],
               "conditions": [condition("Validated", True, "Passed", "", 1)]}
    # v3 now holds production and is better, but v2's verdict for generation 1 stands.
    v3 = mv(3, ["production"], {"accuracy": 0.99}, status={"aliases": ["production"]})
    statuses = model_statuses([mv(2, [], {"accuracy": 0.93}, rule, status=decided), v3], [])
    assert statuses["iris-v2"]["phase"] == "Ready"
    again = model_statuses([mv(2, [], {"accuracy": 0.93}, rule, status=decided, generation=2), v3], [])
    assert again["iris-v2"]["phase"] == "Rejected"


def isvc(name, model=None, status=None, canary=None):
    spec = {"model": {"name": "iris"} | (model or {})}
    if canary:
        spec["canary"] = {"model": {"name": "iris"} | canary, "trafficPercent": 10}
    return {"metadata": {"name": name}, "spec": spec, "status": status or {}}


def test_served_by_lists_services_by_version_alias_canary_and_reported_serving():
    services = [isvc("by-version", {"version": 1}), isvc("by-alias", {"alias": "production"}),
                isvc("canary", {"version": 7}, canary={"version": 1}),
                isvc("reported", {"version": 9}, status={"servedModelVersion": "iris-v1"}),
                isvc("other", {"alias": "staging"})]
    statuses = model_statuses([mv(1, ["production"])], services)
    assert statuses["iris-v1"]["servedBy"] == ["by-alias", "by-version", "canary", "reported"]


def test_a_deleting_version_that_is_served_says_what_holds_it():
    status = model_statuses([mv(1, deletionTimestamp="2026-01-01T00:00:00Z")], [isvc("svc", {"version": 1})])
    assert status["iris-v1"]["message"].startswith("deletion waits: served by InferenceService(s) svc")


def test_an_invalid_spec_fails_with_the_field():
    bad = mv(1)
    bad["spec"]["version"] = 0
    status = model_statuses([bad], [])["iris-v1"]
    assert status["phase"] == "Failed" and "spec.version" in status["message"]


def test_key_metric_prefers_the_champion_metric_then_thresholds():
    from mlcycle.api.modelversion import ModelVersionSpec

    spec = mv(1, metrics={"accuracy": 0.9512, "f1": 0.5, "loss": 0.2},
              validation={"thresholds": [{"metric": "loss", "op": "<=", "value": 1}]})["spec"]
    assert key_metric(ModelVersionSpec.model_validate(spec)) == "loss=0.2"
    spec["validation"]["champion"] = {"alias": "p", "metric": "accuracy"}
    assert key_metric(ModelVersionSpec.model_validate(spec)) == "accuracy=0.9512"
    assert model_statuses([mv(1, metrics={"f1": 0.5})], [])["iris-v1"]["keyMetric"] == "f1=0.5"


def test_artifact_fields_record_the_digest_or_the_failure_with_its_retry():
    ok = artifact_fields(Verified(DIGEST, 10, "e", "loads"), 3, {})
    assert ok["verifiedDigest"] == DIGEST and ok["size"] == 10
    assert ok["conditions"][0]["status"] == "True" and ok["conditions"][0]["observedGeneration"] == 3
    failed = artifact_fields(VerificationFailed("ArtifactNotFound", "gone"), 3,
                             {"attempts": 2, "retryAt": "2026-01-01T00:00:20Z"})
    assert "verifiedDigest" not in failed
    assert failed["conditions"][0]["message"] == "gone; retry 2 at 2026-01-01T00:00:20Z"
    assert artifact_fields(VerificationFailed("DigestMismatch", "differs"), 3, {})["conditions"][0]["message"] == \
        "differs"


def test_events_on_ready_rejected_and_alias_moves():
    assert events({"phase": "Verifying"}, {"phase": "Ready", "message": "ready", "aliases": ["production"]}) == [
        ("Normal", "Ready", "ready"), ("Normal", "AliasAssigned", "now holds alias production")]
    assert events({"phase": "Ready", "aliases": ["production"]}, {"phase": "Ready", "message": "", "aliases": []}) == [
        ("Normal", "AliasRemoved", "no longer holds alias production")]
    assert events({"phase": "Verifying"}, {"phase": "Rejected", "message": "no"}) == [("Warning", "Rejected", "no")]
    assert events({"phase": "Ready"}, {"phase": "Ready", "message": "ready"}) == []
