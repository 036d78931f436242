"""KServe v2 traffic on the local stack (`mlcycle dev`, the serving e2e tests): one request to a serving pod's
agent, and a background client that keeps sending through a Service (re-resolving its backend as the name
would) and counts the answers."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

from mlcycle.api.inferenceservice import AGENT_PORT
from mlcycle.localdev.cluster import service_backend


def infer_once(address: str, row, model: str = "iris", request_id: str | None = None) -> tuple[str | None, int]:
    """(x-mlcycle-model-version, HTTP status) of one request with one row to the agent at `address`; with
    `request_id`, the request carries it as its v2 `id` (the id the agent logs, and delayed labels name)."""
    document: dict = {"inputs": [{"name": "INPUT__0", "shape": [1, len(row)], "datatype": "FP32",
                                  "data": [float(v) for v in row]}]}
    if request_id is not None:
        document["id"] = request_id
    body = json.dumps(document).encode()
    request = urllib.request.Request(f"http://{address}:{AGENT_PORT}/v2/models/{model}/infer", body,
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.headers.get("x-mlcycle-model-version"), r.status
    except urllib.error.HTTPError as e:
        return e.headers.get("x-mlcycle-model-version"), e.code
    except OSError as e:  # no answer at all: the error in place of the version, for the test's message
        return f"{type(e).__name__}: {e}", 0


class Client:
    """Requests through a Service from the host until closed; `rows` are sent in turn."""

    def __init__(self, cluster, service: str, namespace: str, rows, model: str = "iris"):
        self.cluster, self.service, self.namespace, self.rows, self.model = cluster, service, namespace, rows, model
        self.answers: list[tuple[str | None, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            address = service_backend(self.cluster, self.service, self.namespace)
            if address is None:
                self.stop.wait(0.5)  # nothing serves yet
            for _ in range(20):
                if address and not self.stop.is_set():
                    self.answers.append(infer_once(address, self.rows[i % len(self.rows)], self.model))
                    i += 1

    def close(self) -> tuple[int, int]:
        """(requests sent, requests failed)."""
        self.stop.set()
        self.thread.join(30)
        return len(self.answers), len(self.failures())

    def failures(self) -> list[tuple[str | None, int]]:
        return [a for a in self.answers if a[1] != 200]


def logged_rows(minio_client, bucket: str, prefix: str) -> int:
    """Rows the agents have written as Parquet under `prefix` (reads only each file's footer)."""
    import io

    import pyarrow.parquet as pq

    total = 0
    for obj in minio_client.list_objects(bucket, prefix=prefix, recursive=True):
        data = minio_client.get_object(bucket, obj.object_name).read()
        total += pq.read_metadata(io.BytesIO(data)).num_rows
    return total
