from mlcycle.modelversion import deletion


def mv(policy="Delete", status=None):
    return {"spec": {"deletionPolicy": policy, "artifact": {"uri": "s3://b/x.pt"}, "storage": {"secretRef": {
        "name": "s3"}}}, "status": status or {}}


def secret(annotations=None):
    return {"metadata": {"annotations": annotations or {}}}


def test_delete_removes_only_what_the_operator_wrote_unless_the_secret_opts_in():
    refused = deletion.refusal(mv(), secret())
    assert "s3://b/x.pt is kept" in refused and deletion.ALLOW_ANNOTATION in refused and "Secret s3" in refused
    assert deletion.refusal(mv(status={"registeredBy": {"name": "tj", "uid": "u"}}), secret()) is None
    assert deletion.refusal(mv(), secret({deletion.ALLOW_ANNOTATION: "true"})) is None
    assert deletion.refusal(mv(), secret({deletion.ALLOW_ANNOTATION: "yes"})) is not None
    assert deletion.refusal(mv(), None) is not None
    assert deletion.refusal(mv("Retain"), secret()) is None
