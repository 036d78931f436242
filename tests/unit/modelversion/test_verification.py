import io
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from mlcycle.modelversion import onnx
from mlcycle.modelversion.verification import (
    VerificationFailed,
    Verified,
    check_format,
    digest_problem,
    fingerprint,
    next_record,
    onnx_signature_problems,
    probe_torchscript,
    torchscript_archive_problem,
    torchscript_signature_problems,
    verification_due,
)
from modelversion_artifacts import SIGNATURE, checkpoint_bytes, onnx_bytes, torchscript_bytes

A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def write(tmp_path, data: bytes):
    path = tmp_path / "model"
    path.write_bytes(data)
    return path


def test_digest_must_match_the_spec_and_must_not_change_after_verification():
    assert digest_problem(A, None, None) is None
    assert digest_problem(A, A, A) is None
    assert digest_problem(A, B, None).reason == "DigestMismatch"
    changed = digest_problem(B, None, A)
    assert changed.reason == "DigestChanged" and "changed after it was verified" in changed.message
    assert not changed.healable


def test_torchscript_file_loads_and_its_signature_matches(tmp_path):
    detail = check_format(write(tmp_path, torchscript_bytes()), "torchscript", SIGNATURE)
    assert detail == "TorchScript loads; the signature matches forward()"


@pytest.mark.parametrize(("data", "expected"), [
    (b"not a model at all", "not a zip archive"),
    (checkpoint_bytes(), "a torch.save() checkpoint?"),
])
def test_files_that_are_not_torchscript_are_invalid_format(tmp_path, data, expected):
    assert expected in torchscript_archive_problem(write(tmp_path, data))
    with pytest.raises(VerificationFailed) as failed:
        check_format(write(tmp_path, data), "torchscript", SIGNATURE)
    assert failed.value.reason == "InvalidFormat"


def test_a_signature_that_does_not_fit_the_torchscript_model_is_a_mismatch(tmp_path):
    two_inputs = {**SIGNATURE, "inputs": SIGNATURE["inputs"] * 2}
    path = write(tmp_path, torchscript_bytes())
    with pytest.raises(VerificationFailed) as failed:
        check_format(path, "torchscript", two_inputs)
    assert failed.value.reason == "SignatureMismatch"
    assert "forward(x) takes 1..1 inputs, the signature lists 2" in failed.value.message
    wrong_width = {**SIGNATURE, "inputs": [{"name": "x", "dtype": "FP32", "shape": [-1, 5]}]}
    with pytest.raises(VerificationFailed, match="forward\\(\\) on zero tensors .* failed"):
        check_format(path, "torchscript", wrong_width)
    with pytest.raises(VerificationFailed, match="SignatureMissing|spec.signature is required"):
        check_format(path, "torchscript", None)


def test_torchscript_output_checks_compare_count_dtype_and_fixed_dimensions():
    found = {"arguments": [{"name": "x", "hasDefault": False}], "outputs": [{"dtype": "FP32", "shape": [1, 3]}]}
    assert torchscript_signature_problems(found, SIGNATURE) == []
    fp16 = {**SIGNATURE, "outputs": [{"name": "probs", "dtype": "FP16", "shape": [-1, 3]}]}
    assert torchscript_signature_problems(found, fp16) == ["output probs is FP32, the signature says FP16"]
    wide = {**SIGNATURE, "outputs": [{"name": "probs", "dtype": "FP32", "shape": [-1, 4]}]}
    assert "has shape [1, 3]" in torchscript_signature_problems(found, wide)[0]
    two = {**SIGNATURE, "outputs": SIGNATURE["outputs"] * 2}
    assert torchscript_signature_problems(found, two) == ["forward() returns 1 output(s), the signature lists 2"]


def test_onnx_graph_is_read_without_the_onnx_package():
    data = onnx_bytes(weights=1 << 20)
    graph = onnx.read_graph(io.BytesIO(data), len(data))
    assert graph["irVersion"] == 8 and graph["nodes"] == 1
    assert graph["inputs"] == [{"name": "x", "dtype": "FP32", "shape": [None, 4]}]  # W is an initializer
    assert graph["outputs"] == [{"name": "probs", "dtype": "FP32", "shape": [None, 3]}]


def test_onnx_file_checks(tmp_path):
    assert check_format(write(tmp_path, onnx_bytes()), "onnx", SIGNATURE).startswith("ONNX parses (IR 8, 1 nodes)")
    for not_onnx in (b"\x00\x01garbage", torchscript_bytes(), b""):
        with pytest.raises(VerificationFailed, match="not an ONNX model"):
            check_format(write(tmp_path, not_onnx), "onnx", SIGNATURE)


def test_onnx_signature_problems_name_the_tensor():
    graph = {"inputs": [{"name": "x", "dtype": "FP32", "shape": [None, 4]}],
             "outputs": [{"name": "probs", "dtype": "INT64", "shape": [None, 3]}]}
    renamed = {**SIGNATURE, "inputs": [{"name": "input", "dtype": "FP32", "shape": [-1, 4]}]}
    assert onnx_signature_problems(graph, renamed) == [
        "input input is not in the graph (it has x)", "output probs is INT64, the signature says FP32",
        "the graph needs input(s) x that the signature does not list"]
    narrow = {**SIGNATURE, "inputs": [{"name": "x", "dtype": "FP32", "shape": [-1, 2]}]}
    assert "input x has shape [None, 4]" in onnx_signature_problems(graph, narrow)[0]


def test_other_formats_are_not_inspected(tmp_path):
    assert check_format(write(tmp_path, b"plan"), "tensorrt", None) == "format tensorrt is not inspected"


def test_healable_failures_back_off_exponentially_and_reset_for_a_new_spec():
    missing = VerificationFailed("ArtifactNotFound", "gone")
    first = next_record(missing, "fp", None, NOW)
    assert first == {"for": "fp", "attempts": 1, "retryAt": "2026-01-01T00:00:10Z"}
    second = next_record(missing, "fp", first, NOW)
    assert (second["attempts"], second["retryAt"]) == (2, "2026-01-01T00:00:20Z")
    assert next_record(missing, "other", second, NOW)["attempts"] == 1
    assert next_record(missing, "fp", {"for": "fp", "attempts": 30}, NOW)["retryAt"] == "2026-01-01T00:05:00Z"
    assert not verification_due(first, "fp", NOW)
    assert verification_due(first, "fp", NOW + timedelta(seconds=10))
    assert verification_due(first, "changed", NOW)
    assert verification_due(None, "fp", NOW)


def test_final_outcomes_are_not_retried_but_keep_the_etag_for_rechecks():
    assert next_record(Verified(A, 1, "etag1", ""), "fp", None, NOW) == {"for": "fp", "etag": "etag1"}
    mismatch = next_record(VerificationFailed("DigestMismatch", "x", etag="etag2"), "fp", None, NOW)
    assert mismatch == {"for": "fp", "etag": "etag2"}
    assert not verification_due(mismatch, "fp", NOW + timedelta(days=1))


def test_fingerprint_follows_artifact_and_signature():
    artifact = {"uri": "s3://b/k", "format": "onnx"}
    assert fingerprint(artifact, SIGNATURE) == fingerprint(dict(artifact), dict(SIGNATURE))
    assert fingerprint(artifact, SIGNATURE) != fingerprint(artifact, None)


def test_the_probe_loads_the_model_in_a_child_process(tmp_path):
    found = probe_torchscript(write(tmp_path, torchscript_bytes()), SIGNATURE)
    assert found == {"arguments": [{"name": "x", "hasDefault": False}],
                     "outputs": [{"dtype": "FP32", "shape": [1, 3]}], "runError": None}


def test_the_operator_never_imports_torch():
    code = "import sys, mlcycle.handlers, mlcycle.lineage; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_probe_that_cannot_finish_is_a_retried_failure_not_a_verdict_on_the_file(tmp_path):
    with pytest.raises(VerificationFailed) as failed:
        probe_torchscript(write(tmp_path, torchscript_bytes()), SIGNATURE, timeout=0.01)
    assert failed.value.reason == "ProbeFailed" and failed.value.healable
