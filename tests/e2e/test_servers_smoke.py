"""The real MinIO and Triton servers answer as the rest of the suite expects."""

import hashlib
import io
import textwrap

import numpy as np
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http


def test_minio_object_reads_back_byte_identical(minio, bucket):
    payload = np.random.default_rng(0).bytes(3 * 1024 * 1024 + 17)
    client = minio.client()
    client.put_object(bucket, "blob/data.bin", io.BytesIO(payload), len(payload))
    response = client.get_object(bucket, "blob/data.bin")
    try:
        read = response.read()
    finally:
        response.close()
        response.release_conn()
    assert hashlib.sha256(read).hexdigest() == hashlib.sha256(payload).hexdigest()


ADD_ONE_CONFIG = """
name: "addone"
backend: "python"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
"""

ADD_ONE_MODEL = textwrap.dedent("""
    import numpy as np
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def execute(self, requests):
            responses = []
            for request in requests:
                x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
                responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", x + 1)]))
            return responses
""")


def test_triton_python_backend_model_answers_http_and_grpc(triton, tmp_path):
    model = tmp_path / "repo" / "addone"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(ADD_ONE_CONFIG)
    (model / "1" / "model.py").write_text(ADD_ONE_MODEL)
    server = triton(tmp_path / "repo")
    x = np.arange(8, dtype=np.float32).reshape(2, 4)

    http = triton_http.InferenceServerClient(server.http_url)
    inp = triton_http.InferInput("INPUT0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    assert np.array_equal(http.infer("addone", [inp]).as_numpy("OUTPUT0"), x + 1)
    http.close()

    grpc = triton_grpc.InferenceServerClient(server.grpc_url)
    inp = triton_grpc.InferInput("INPUT0", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    assert np.array_equal(grpc.infer("addone", [inp]).as_numpy("OUTPUT0"), x + 1)
    grpc.close()
