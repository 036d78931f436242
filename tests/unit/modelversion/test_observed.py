from mlcycle.api import labels as keys
from mlcycle.modelversion import observed
from mlcycle.modelversion.status import served_by
from mlcycle.modelversion.verification import ANNOTATION
from mlcycle.modelversion.verifyjob import finished


def test_a_version_keeps_what_status_and_writes_read_and_drops_the_rest():
    body = {"apiVersion": "mlcycle.io/v1alpha1", "kind": "ModelVersion",
            "metadata": {"name": "m-v1", "namespace": "ns", "uid": "u", "generation": 2, "resourceVersion": "7",
                         "labels": {keys.MODEL: "m"}, "finalizers": [keys.FINALIZER],
                         "annotations": {ANNOTATION: "{}", "mlcycle.io/last-handled-configuration": "x" * 1000},
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"modelName": "m", "version": 1}, "status": {"phase": "Ready"}}
    slim = observed.version(body)
    assert slim["metadata"] == {"name": "m-v1", "namespace": "ns", "uid": "u", "generation": 2,
                                "resourceVersion": "7", "labels": {keys.MODEL: "m"},
                                "finalizers": [keys.FINALIZER], "annotations": {ANNOTATION: "{}"}}
    assert slim["spec"] == body["spec"] and slim["status"] == body["status"]
    slim["spec"]["version"] = 2
    assert body["spec"]["version"] == 1  # a copy: the store never shares kopf's event bodies


def test_an_inference_service_keeps_its_model_references_and_what_it_serves():
    body = {"metadata": {"name": "svc", "namespace": "ns", "uid": "x"},
            "spec": {"model": {"name": "m", "alias": "prod"}, "canary": {"model": {"name": "m", "version": 2},
                                                                       "weight": 10}, "replicas": 3},
            "status": {"servedModelVersion": "m-v1", "conditions": [{"type": "Ready"}]}}
    slim = observed.inference_service(body)
    assert slim == {"metadata": {"name": "svc", "namespace": "ns"},
                    "spec": {"model": {"name": "m", "alias": "prod"}, "canary": {"model": {"name": "m", "version": 2}}},
                    "status": {"servedModelVersion": "m-v1"}}
    mv = {"metadata": {"name": "m-v2"}, "spec": {"modelName": "m", "version": 2}}
    assert served_by(mv, [], [slim]) == served_by(mv, [], [body]) == ["svc"]


def test_a_job_keeps_its_fingerprint_and_whether_it_finished():
    body = {"metadata": {"name": "j", "namespace": "ns", "annotations": {keys.FINGERPRINT_ANNOTATION: "f"}},
            "spec": {"template": {"spec": {"containers": [{"name": "verify"}]}}},
            "status": {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}}
    slim = observed.job(body)
    assert slim["metadata"]["annotations"] == {keys.FINGERPRINT_ANNOTATION: "f"} and "spec" not in slim
    assert finished(slim)
