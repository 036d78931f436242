from mlcycle.api import labels as keys
from mlcycle.modelversion import metadata


def test_labels_hold_a_cut_job_name_and_the_finalizer_is_wanted():
    mv = {"metadata": {"name": "m-v1", "namespace": "ns", "uid": "u", "labels": {}},
          "spec": {"modelName": "m", "source": {"trainingJob": "j" * 200}}}
    labels = metadata.labels(mv["spec"])
    assert labels[keys.MODEL] == "m" and len(labels[keys.TRAININGJOB]) <= 63
    assert metadata.needs_update(mv)
    body = metadata.desired(mv, {"for": "x"})
    assert body["metadata"]["finalizers"] == [keys.FINALIZER] and body["metadata"]["labels"] == labels
    mv["metadata"] |= {"labels": labels, "finalizers": [keys.FINALIZER]}
    assert not metadata.needs_update(mv)
