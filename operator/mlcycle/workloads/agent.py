"""`mlcycle agent`: the serving pod's HTTP entry point, a sidecar in front of Triton on localhost.

It proxies the KServe v2 REST protocol (`/v2`, `/v2/health/...`, `/v2/models/...`) to Triton over pooled
keep-alive connections, and on inference requests (`POST /v2/models/<m>[/versions/<v>]/infer`) it
- splits traffic: a stable version's agent forwards `canaryPercent` of the inference requests it gets to
  the canary's Service (whose own agents serve, log and count them) and serves the rest locally; a
  request forwarded once is never forwarded again (header `x-mlcycle-forwarded`). When the canary does
  not answer at all, the request is served locally and counted in
  `mlcycle_agent_canary_forward_failures_total{model_version=<canary>}` (the rollout analysis counts
  those as failures of the canary);
- answers with `x-mlcycle-model-version` (the ModelVersion that answered) and `x-request-id` (the
  request's v2 `id` field if given, else its `x-request-id` header, else a generated one);
- logs a sample of the requests as Parquet rows to object storage, off the request path (agent_log.py;
  the schema is in docs/serving-agent.md);
- counts them in `mlcycle_agent_requests_total{model_version,code}` and
  `mlcycle_agent_request_duration_seconds{model_version}`.
Other paths are proxied unchanged, without logging, splitting or counting. gRPC does not go through the
agent (the Service's grpc port targets Triton): gRPC requests are neither logged nor split.

Environment (the operator's contract):
  MLCYCLE_AGENT_PORT            public HTTP port, the Service's http port targets it (8080)
  MLCYCLE_AGENT_ADMIN_PORT      admin port (9091): GET /metrics, GET|PUT /traffic, GET /healthz
  MLCYCLE_AGENT_HOST            address to bind (0.0.0.0)
  MLCYCLE_TRITON_URL            Triton's HTTP endpoint (http://127.0.0.1:8000)
  MLCYCLE_MODEL_NAME            the Triton model; only its inference requests are logged
  MLCYCLE_MODEL_VERSION         the ModelVersion this pod serves (label of metrics, log rows, header)
  MLCYCLE_FEATURE_NAMES         JSON list of the input feature names in column order (else f0..fN)
  MLCYCLE_CANARY_URL            the canary Service, http://<isvc>-canary.<ns>:<port> (none)
  MLCYCLE_CANARY_PERCENT        percent of inference requests forwarded there (0)
  MLCYCLE_CANARY_MODEL_VERSION  the canary's ModelVersion, for the forward-failure metric
  MLCYCLE_LOG_PREFIX            s3://bucket/<destination>/<namespace>/<isvc>/<modelversion>; unset: no logging
  MLCYCLE_LOG_SAMPLE_RATE       fraction of inference requests logged (1)
  MLCYCLE_LOG_BATCH_RECORDS     rows per Parquet object at most (1000)
  MLCYCLE_LOG_FLUSH_SECONDS     longest a row waits before its batch is written (5)
  MLCYCLE_LOG_BUFFER_RECORDS    rows buffered at most; beyond it the oldest are dropped and counted (100000)
  MLCYCLE_LOG_SHUTDOWN_SECONDS  on SIGTERM, how long to keep trying to write what is buffered (15)
  MLCYCLE_S3_ENDPOINT, AWS_ACCESS_KEY_ID, ... the object store, as podenv.storage_env writes them

`PUT /traffic` takes `{"canaryUrl": str|null, "canaryPercent": int, "canaryModelVersion": str|null}` and
changes the split at once, without a restart; `GET /traffic` returns the split in force.

Shutdown: on SIGTERM the agent stops accepting, gives the requests in flight up to 5 s to finish, then
writes what the log buffer holds, trying for MLCYCLE_LOG_SHUTDOWN_SECONDS, and exits at the latest 5 s
after that. The operator should set the pod's terminationGracePeriodSeconds to at least
MLCYCLE_LOG_SHUTDOWN_SECONDS plus 15 s (30 s with the defaults; inferenceservice.agent has the numbers).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import signal
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, disable_created_metrics, generate_latest

from mlcycle.clients import s3
from mlcycle.workloads import agent_v2
from mlcycle.workloads.agent_log import PARQUET_CONTENT_TYPE, LogWriter, RecordBuffer, Sampler, make_entry
from mlcycle.workloads.agent_metrics import AgentMetrics
from mlcycle.workloads.agent_traffic import InvalidTraffic, Splitter, Traffic

log = logging.getLogger("mlcycle.agent")

VERSION_HEADER = "x-mlcycle-model-version"
REQUEST_ID_HEADER = "x-request-id"
FORWARDED_HEADER = "x-mlcycle-forwarded"
# Headers that describe the body and must travel with it, both ways.
_BODY_HEADERS = ("Content-Type", "Content-Encoding", agent_v2.HEADER_LENGTH)
_MAX_BODY = 256 * 1024 * 1024
# A canary that cannot be reached must fail fast, so the request is still served locally in time.
_CANARY_CONNECT_TIMEOUT = 2.0
_DRAIN_SECONDS = 5.0


class InvalidConfig(ValueError):
    pass


@dataclass(frozen=True)
class LogConfig:
    prefix: str  # s3:// URI
    sample_rate: float = 1.0
    batch_records: int = 1000
    flush_seconds: float = 5.0
    buffer_records: int = 100_000
    shutdown_seconds: float = 15.0


@dataclass(frozen=True)
class AgentConfig:
    host: str
    port: int
    admin_port: int
    triton_url: str
    model_name: str | None
    model_version: str
    feature_names: tuple[str, ...]
    traffic: Traffic
    logging: LogConfig | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AgentConfig:
        def number(name: str, default: float, kind: type = int, low: float = 0, high: float | None = None):
            raw = env.get(name, "")
            try:
                value = kind(raw) if raw else kind(default)
            except ValueError as e:
                raise InvalidConfig(f"{name} must be a number, not {raw!r}") from e
            if not math.isfinite(value) or value < low or (high is not None and value > high):
                raise InvalidConfig(f"{name} must be within [{low}, {high if high is not None else '∞'}], not {value}")
            return value

        raw_names = env.get("MLCYCLE_FEATURE_NAMES", "")
        try:
            names = json.loads(raw_names) if raw_names else []
        except ValueError as e:
            raise InvalidConfig(f"MLCYCLE_FEATURE_NAMES is not JSON: {e}") from e
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InvalidConfig("MLCYCLE_FEATURE_NAMES must be a JSON list of strings")
        prefix = env.get("MLCYCLE_LOG_PREFIX", "")
        logging_ = None
        if prefix:
            try:
                s3.parse_s3_uri(prefix)
            except ValueError as e:
                raise InvalidConfig(f"MLCYCLE_LOG_PREFIX: {e}") from e
            logging_ = LogConfig(
                prefix,
                number("MLCYCLE_LOG_SAMPLE_RATE", LogConfig.sample_rate, float, 0, 1),
                number("MLCYCLE_LOG_BATCH_RECORDS", LogConfig.batch_records, int, 1),
                number("MLCYCLE_LOG_FLUSH_SECONDS", LogConfig.flush_seconds, float, 0.01),
                number("MLCYCLE_LOG_BUFFER_RECORDS", LogConfig.buffer_records, int, 1),
                number("MLCYCLE_LOG_SHUTDOWN_SECONDS", LogConfig.shutdown_seconds, float, 0),
            )
        try:
            traffic = Traffic.from_env(env)
        except InvalidTraffic as e:
            raise InvalidConfig(str(e)) from e
        return cls(
            host=env.get("MLCYCLE_AGENT_HOST", "0.0.0.0"),
            port=number("MLCYCLE_AGENT_PORT", 8080, int, 1, 65535),
            admin_port=number("MLCYCLE_AGENT_ADMIN_PORT", 9091, int, 1, 65535),
            triton_url=env.get("MLCYCLE_TRITON_URL", "http://127.0.0.1:8000").rstrip("/"),
            model_name=env.get("MLCYCLE_MODEL_NAME") or None,
            model_version=env.get("MLCYCLE_MODEL_VERSION") or "unknown",
            feature_names=tuple(names),
            traffic=traffic,
            logging=logging_,
        )


def _body_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {h: headers[h] for h in _BODY_HEADERS if h in headers}


def _answer_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """What an answer keeps: its body headers, and who answered when a canary's agent did."""
    return {h: headers[h] for h in (*_BODY_HEADERS, VERSION_HEADER, REQUEST_ID_HEADER) if h in headers}


class Agent:
    def __init__(self, config: AgentConfig, metrics: AgentMetrics, buffer: RecordBuffer | None):
        self.config = config
        self.metrics = metrics
        self.splitter = Splitter(config.traffic)
        self.buffer = buffer
        self.sampler = Sampler(config.logging.sample_rate if config.logging else 0.0)
        self._session: aiohttp.ClientSession | None = None
        self._model_path = f"/v2/models/{config.model_name}/" if config.model_name else None

    async def start(self) -> None:
        # One pooled session: keep-alive connections to Triton (and the canary) are reused across requests.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=30),
            auto_decompress=False, skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )

    async def close(self) -> None:
        if self._session:
            await self._session.close()

    # --- the public port ---------------------------------------------------------------------------

    async def proxy(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.method == "POST" and agent_v2.INFER_PATH.match(request.path):
            return await self._infer(request, body)
        try:
            status, headers, answer = await self._send(self.config.triton_url, request, body, {})
        except (aiohttp.ClientError, TimeoutError) as e:
            return self._unreachable(e)
        return web.Response(status=status, body=answer, headers=headers)

    async def _send(self, base: str, request: web.Request, body: bytes, extra: dict[str, str],
                    timeout: aiohttp.ClientTimeout | None = None) -> tuple[int, dict[str, str], bytes]:
        assert self._session is not None
        async with self._session.request(request.method, base + request.path_qs, data=body,
                                         headers=_body_headers(request.headers) | extra,
                                         timeout=timeout or self._session.timeout) as response:
            return response.status, _answer_headers(response.headers), await response.read()

    def _unreachable(self, error: BaseException) -> web.Response:
        log.warning("Triton at %s did not answer: %r", self.config.triton_url, error)
        return web.json_response({"error": f"the model server did not answer: {type(error).__name__}"},
                                 status=502)

    async def _infer(self, request: web.Request, body: bytes) -> web.Response:
        started, arrived_us = time.perf_counter(), time.time_ns() // 1000
        header_length = request.headers.get(agent_v2.HEADER_LENGTH)
        try:
            document, _ = agent_v2.json_part(body, header_length)
            rid = agent_v2.request_id(document)
        except agent_v2.PayloadError:
            rid = None
        rid = rid or request.headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex

        traffic = self.splitter.traffic
        if FORWARDED_HEADER not in request.headers and traffic.canary_percent and self.splitter.to_canary():
            try:
                status, headers, answer = await self._send(
                    traffic.canary_url, request, body,
                    {REQUEST_ID_HEADER: rid, FORWARDED_HEADER: self.config.model_version},
                    aiohttp.ClientTimeout(total=None, sock_connect=_CANARY_CONNECT_TIMEOUT))
                # The canary's agent counted and logged it, and set the version header.
                return web.Response(status=status, body=answer, headers=headers)
            except (aiohttp.ClientError, TimeoutError) as e:
                log.warning("canary %s did not answer, serving locally: %r", traffic.canary_url, e)
                self.metrics.canary_forward_failures.labels(traffic.canary_model_version or "unknown").inc()

        version = self.config.model_version
        try:
            status, headers, answer = await self._send(self.config.triton_url, request, body,
                                                       {REQUEST_ID_HEADER: rid})
            response = web.Response(status=status, body=answer, headers=headers)
        except (aiohttp.ClientError, TimeoutError) as e:
            status, headers, answer, response = 502, {}, b"", self._unreachable(e)
        latency = time.perf_counter() - started
        self.metrics.requests.labels(version, str(status)).inc()
        self.metrics.request_duration.labels(version).observe(latency)
        response.headers[VERSION_HEADER] = version
        response.headers[REQUEST_ID_HEADER] = rid
        if self.buffer is not None and self._logged(request.path) and self.sampler():
            self._log(rid, arrived_us, latency, status, body, header_length, answer, headers)
        return response

    def _logged(self, path: str) -> bool:
        return self._model_path is None or path.startswith(self._model_path)

    def _log(self, rid: str, arrived_us: int, latency: float, status: int, body: bytes,
             header_length: str | None, answer: bytes, answer_headers: Mapping[str, str]) -> None:
        try:
            inputs = agent_v2.decode(body, header_length, "inputs")
            features = agent_v2.rows(list(inputs.values()))
            outputs = agent_v2.decode(answer, answer_headers.get(agent_v2.HEADER_LENGTH), "outputs") \
                if status == 200 else {}
        except agent_v2.PayloadError as e:
            self.metrics.log_undecodable.inc()
            log.debug("request %s not logged: %s", rid, e)
            return
        entry = make_entry(rid, arrived_us, self.config.model_version, latency * 1000, status, features, outputs)
        assert self.buffer is not None
        dropped = self.buffer.put(entry)
        if dropped:
            self.metrics.log_dropped.inc(dropped)

    # --- the admin port ----------------------------------------------------------------------------

    async def metrics_page(self, request: web.Request) -> web.Response:
        if self.buffer is not None:
            self.metrics.log_queue_depth.set(self.buffer.depth)
        return web.Response(body=generate_latest(self.metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def get_traffic(self, request: web.Request) -> web.Response:
        return web.json_response(self.splitter.traffic.to_json())

    async def put_traffic(self, request: web.Request) -> web.Response:
        try:
            traffic = Traffic.from_json(await request.json())
        except (ValueError, InvalidTraffic) as e:
            return web.json_response({"error": str(e)}, status=400)
        self.splitter.set(traffic)
        log.info("traffic: %s", traffic.to_json())
        return web.json_response(traffic.to_json())

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    def public_app(self) -> web.Application:
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_route("*", "/v2{tail:.*}", self.proxy)
        return app

    def admin_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.metrics_page)
        app.router.add_get("/traffic", self.get_traffic)
        app.router.add_put("/traffic", self.put_traffic)
        app.router.add_get("/healthz", self.healthz)
        return app


def _writer(config: AgentConfig, metrics: AgentMetrics, env: Mapping[str, str]) -> LogWriter | None:
    if config.logging is None:
        return None
    import urllib3

    bucket, prefix = s3.parse_s3_uri(config.logging.prefix)
    # Short timeouts and no retries inside the client: the writer retries, with backoff, as long as needed.
    client = s3.client(s3.S3Config.from_env(env), urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=3, read=15), retries=False, maxsize=2))

    def store(key: str, data: bytes) -> None:
        s3.upload_bytes(client, bucket, key, data, PARQUET_CONTENT_TYPE)

    return LogWriter(RecordBuffer(config.logging.buffer_records), store, prefix, config.feature_names, metrics,
                     config.logging.batch_records, config.logging.flush_seconds)


async def serve(config: AgentConfig, env: Mapping[str, str]) -> None:
    disable_created_metrics()  # the *_created series only double every scrape
    metrics = AgentMetrics()
    writer = _writer(config, metrics, env)
    agent = Agent(config, metrics, writer.buffer if writer else None)
    await agent.start()
    if writer:
        writer.start()
    # On SIGTERM, requests in flight get _DRAIN_SECONDS to finish; the log buffer is written after that.
    runners = [web.AppRunner(app, access_log=None, shutdown_timeout=_DRAIN_SECONDS)
               for app in (agent.public_app(), agent.admin_app())]
    for runner, port in zip(runners, (config.port, config.admin_port), strict=True):
        await runner.setup()
        await web.TCPSite(runner, config.host, port, backlog=1024).start()
    log.info("agent for %s on %s:%d (admin %d), Triton %s, logging %s, traffic %s", config.model_version,
             config.host, config.port, config.admin_port, config.triton_url,
             config.logging.prefix if config.logging else "off", config.traffic.to_json())

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping: finishing requests in flight, then writing the log buffer")
    for runner in runners:
        await runner.cleanup()
    await agent.close()
    if writer and config.logging:
        await asyncio.to_thread(writer.close, config.logging.shutdown_seconds)


def main(argv: list[str]) -> int:
    if argv:
        print("usage: mlcycle agent (configured by environment; see `pydoc mlcycle.workloads.agent`)",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = AgentConfig.from_env(os.environ)
    except InvalidConfig as e:
        print(f"mlcycle agent: {e}", file=sys.stderr)
        return 2
    asyncio.run(serve(config, os.environ))
    return 0
