from factories import trainingjob_spec as spec
from mlcycle.api import labels as keys
from mlcycle.trainingjob import registration


def status(**extra):
    return {"artifact": {"uri": "s3://m/iris/0123abcd/model.pt", "digest": "sha256:" + "a" * 64, "size": 10},
            "metrics": {"val_accuracy": 0.9}} | extra


def registered(**spec_fields):
    return spec(registerModel={"name": "iris", "aliases": ["staging"]}, **spec_fields)


def test_model_version_records_lineage_and_has_no_owner():
    mv = registration.desired_model_version("tj", "ns", "uid-1", registered(), status(), 3, None)
    assert mv["metadata"]["name"] == "iris-v3" and "ownerReferences" not in mv["metadata"]
    assert mv["metadata"]["labels"][keys.MODEL] == "iris"
    assert mv["metadata"]["labels"][keys.TRAININGJOB_UID] == "uid-1"
    assert mv["spec"]["source"]["trainingJob"] == "tj"
    assert mv["spec"]["artifact"]["digest"] == "sha256:" + "a" * 64
    assert mv["spec"]["aliases"] == ["staging"] and mv["spec"]["metrics"] == {"val_accuracy": 0.9}


def test_dataset_digest_comes_from_the_spec_or_else_from_what_the_trainer_read():
    read = "sha256:" + "c" * 64
    mv = registration.desired_model_version("tj", "ns", "u", registered(), status(datasetDigest=read), 1, None)
    assert mv["spec"]["source"]["dataset"] == {"uri": "s3://data/iris.csv", "digest": read}
    pinned = "sha256:" + "d" * 64
    s = registered(dataset={"uri": "s3://data/iris.csv", "digest": pinned})
    mv = registration.desired_model_version("tj", "ns", "u", s, status(datasetDigest=read), 1, None)
    assert mv["spec"]["source"]["dataset"]["digest"] == pinned


def test_next_version_and_signature_location():
    assert registration.next_version([]) == 1
    assert registration.next_version([{"spec": {"version": 4}}, {"spec": {"version": 2}}]) == 5
    assert registration.signature_uri("s3://m/iris/run/model.pt") == "s3://m/iris/run/signature.json"


def test_candidate_versions_and_what_a_run_wrote():
    assert registration.candidate_versions([{"spec": {"version": 2}}]) == [3, 4, 5, 6, 7]
    s = registered(output={"uri": "s3://models/iris/"})
    assert registration.written_by_run(s, "0123456789", "s3://models/iris/01234567/model.pt")
    assert not registration.written_by_run(s, "0123456789", "s3://models/iris/other/model.pt")
    assert not registration.written_by_run(s, "0123456789", "s3://victim/important.pt")
    mine = {"metadata": {"labels": {keys.TRAININGJOB_UID: "u1"}}}
    assert registration.registered_by([mine, {"metadata": {}}], "u1") == [mine]


def test_a_long_job_name_becomes_a_valid_label_value_and_stays_in_the_source():
    long = "t" * 253
    mv = registration.desired_model_version(long, "ns", "u", registered(), status(), 1, None)
    assert len(mv["metadata"]["labels"][keys.TRAININGJOB]) <= 63
    assert mv["spec"]["source"]["trainingJob"] == long
def test_the_built_in_trainer_registers_its_first_export_format():
    trainer = {"task": "classification", "labelColumn": "species", "exportFormats": ["onnx", "torchscript"]}
    mv = registration.desired_model_version("tj", "ns", "u", registered(trainer=trainer), status(), 1, None)
    assert mv["spec"]["artifact"]["format"] == "onnx"
    user_image = spec(trainer=None, command=["python", "train.py"], registerModel={"name": "iris", "format": "onnx"})
    assert registration.registered_format(user_image) == "onnx"
    assert registration.registered_format(registered()) == "torchscript"


def test_the_evaluation_and_its_gates_go_to_the_model_version():
    evaluation = {"slices": [{"feature": "region", "value": "north", "metrics": {"count": 3, "accuracy": 1.0}}]}
    validation = {"slices": [{"feature": "region"}],
                  "sliceThresholds": [{"metric": "accuracy", "op": ">=", "value": 0.8}]}
    s = spec(registerModel={"name": "iris", "validation": validation})
    mv = registration.desired_model_version("tj", "ns", "u", s, status(evaluation=evaluation), 1, None)
    assert mv["spec"]["evaluation"] == evaluation
    assert mv["spec"]["validation"] == validation
    assert "evaluation" not in registration.desired_model_version("tj", "ns", "u", s, status(), 1, None)["spec"]
