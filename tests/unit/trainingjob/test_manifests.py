import json

from factories import trainingjob_spec as spec
from mlcycle import podspec
from mlcycle.trainingjob import manifests


def env_of(job: dict) -> dict:
    return {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_single_worker_is_a_plain_job_without_service():
    job = manifests.desired_job("iris", "ns", "uid-1", spec())
    assert job["kind"] == "Job" and job["metadata"]["name"] == "iris"
    assert "completionMode" not in job["spec"]
    assert job["spec"]["parallelism"] == job["spec"]["completions"] == 1
    assert manifests.desired_service("iris", "ns", "uid-1", spec()) is None
    env = env_of(job)
    assert env["PET_NNODES"]["value"] == "1" and env["PET_NODE_RANK"]["value"] == "0"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["mlcycle", "train"]


def test_distributed_job_is_indexed_with_headless_service_and_rank_from_completion_index():
    s = spec(workers=3, procsPerWorker=2, resources={"gpus": 2})
    job = manifests.desired_job("bert", "team-a", "uid-2", s)
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["parallelism"] == job["spec"]["completions"] == 3
    pod = job["spec"]["template"]["spec"]
    assert pod["subdomain"] == "bert"
    env = env_of(job)
    assert env["PET_NNODES"]["value"] == "3"
    assert env["PET_NPROC_PER_NODE"]["value"] == "2"
    assert env["PET_NODE_RANK"]["valueFrom"]["fieldRef"]["fieldPath"] == manifests.COMPLETION_INDEX_FIELD
    assert env["PET_MASTER_ADDR"]["value"] == "bert-0.bert.team-a.svc"
    svc = manifests.desired_service("bert", "team-a", "uid-2", s)
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"] == {manifests.LABEL: "bert"}
    assert svc["spec"]["publishNotReadyAddresses"] is True


def test_gpus_become_limits_toleration_and_node_selection():
    s = spec(resources={"gpus": 4, "cpu": "8", "memory": "32Gi"}, gpuType="NVIDIA-H100-80GB-HBM3",
             nodeSelector={"pool": "train"})
    pod = manifests.desired_job("g", "ns", "u", s)["spec"]["template"]["spec"]
    limits = pod["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "4"}
    assert podspec.GPU_TOLERATION in pod["tolerations"]
    assert pod["nodeSelector"] == {"pool": "train", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}


def test_cpu_job_has_no_gpu_toleration():
    pod = manifests.desired_job("c", "ns", "u", spec())["spec"]["template"]["spec"]
    assert "tolerations" not in pod and "nodeSelector" not in pod


def test_credentials_come_from_the_secret_by_reference_only():
    env = env_of(manifests.desired_job("iris", "ns", "u", spec()))
    for name, key in [("AWS_ACCESS_KEY_ID", "accessKey"), ("AWS_SECRET_ACCESS_KEY", "secretKey"),
                      ("MLCYCLE_S3_ENDPOINT", "endpoint")]:
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "s3-creds", "key": key}
        assert "value" not in env[name]


def test_trainer_config_is_passed_as_json():
    env = env_of(manifests.desired_job("iris", "ns", "u", spec()))
    trainer = json.loads(env["MLCYCLE_TRAINER"]["value"])
    assert trainer["labelColumn"] == "label" and trainer["hyperparameters"]["epochs"] == 10


def test_children_are_owned_by_the_trainingjob():
    job = manifests.desired_job("iris", "ns", "uid-9", spec(workers=2))
    svc = manifests.desired_service("iris", "ns", "uid-9", spec(workers=2))
    for obj in (job, svc):
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref["uid"] == "uid-9" and ref["kind"] == "TrainingJob" and ref["controller"] is True


def test_suspend_is_only_written_when_requested():
    assert "suspend" not in manifests.desired_job("a", "ns", "u", spec())["spec"]
    suspended = manifests.desired_job("a", "ns", "u", spec(runPolicy={"suspend": True}))
    assert suspended["spec"]["suspend"] is True


def test_run_policy_maps_to_the_job():
    job = manifests.desired_job("a", "ns", "u", spec(runPolicy={"backoffLimit": 0, "activeDeadlineSeconds": 60}))
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] == 60


def test_user_env_that_overrides_reserved_names_is_refused_with_the_field():
    s = spec(env=[{"name": "OK", "value": "1"}, {"name": "PET_NNODES", "value": "9"}])
    assert manifests.reserved_env_errors(s) == ["spec.env[1].name: PET_NNODES is set by the operator; remove it"]


def test_long_names_are_cut_deterministically_to_keep_hostnames_dns_labels():
    long = "a" * 80
    name = manifests.child_name(long)
    assert name == manifests.child_name(long) and len(name) + len("-1023") <= 63
    assert manifests.child_name("a" * 79) != name


def test_user_command_replaces_the_builtin_trainer():
    s = spec(command=["python", "train.py"], args=["--lr", "0.1"], image="example.com/me/train:1")
    c = manifests.desired_job("u", "ns", "u", s)["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["python", "train.py"] and c["args"] == ["--lr", "0.1"]
    assert c["image"] == "example.com/me/train:1"


def test_each_run_writes_under_its_own_prefix():
    env = env_of(manifests.desired_job("iris", "ns", "0123456789ab", spec(output={"uri": "s3://models/iris/"})))
    assert env["MLCYCLE_OUTPUT_URI"]["value"] == "s3://models/iris/01234567"


def test_the_trainer_image_is_the_operators_unless_the_spec_names_one():
    job = manifests.desired_job("iris", "ns", "u", spec(), default_image="registry.example/mlcycle:2.0")
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/mlcycle:2.0"
    assert manifests.job_image(job) == "registry.example/mlcycle:2.0"
    mine = manifests.desired_job("iris", "ns", "u", spec(image="example.com/me/train:1"), default_image="x")
    assert manifests.job_image(mine) == "example.com/me/train:1" and manifests.job_image(None) is None


def test_the_slices_to_evaluate_are_passed_as_json_only_when_asked_for():
    validation = {"slices": [{"feature": "age", "bins": [30, 60]}], "positiveClass": "yes",
                  "thresholds": [{"metric": "val_accuracy", "op": ">=", "value": 0.8}]}
    env = env_of(manifests.desired_job("iris", "ns", "u", spec(registerModel={"name": "m", "validation": validation})))
    assert json.loads(env["MLCYCLE_EVALUATION"]["value"]) == {
        "slices": [{"feature": "age", "bins": [30.0, 60.0]}], "positiveClass": "yes"}
    assert "MLCYCLE_EVALUATION" not in env_of(manifests.desired_job("iris", "ns", "u", spec()))
