"""The verification Job of one ModelVersion: a short pod (`mlcycle verify`, the mlcycle image) that downloads the
artifact, checks digest, format and signature, and reports in its termination message — the TrainingJob's
pattern. The model's code runs there, never in the operator: the pod mounts no ServiceAccount token, has
limits, no service links, and a NetworkPolicy (enforced where the cluster enforces them) that lets it reach
only DNS and the object store's port.

One Job per verification attempt (generateName), found again by the version's uid label and the spec
fingerprint it checks; the handler deletes it once it has read the result.
"""

from __future__ import annotations

import json

from mlcycle import names, podenv
from mlcycle.api import labels as keys
from mlcycle.api.base import owner_reference
from mlcycle.api.modelversion import KIND
from mlcycle.modelversion import verification
from mlcycle.pods import job_condition, termination_message

COMPONENT = {"app.kubernetes.io/component": "verify"}
TERMINATION_LOG = "/dev/termination-log"
SCRATCH = "/scratch"  # the download goes to an emptyDir: the root file system is read-only
DEADLINE_SECONDS = verification.PROBE_TIMEOUT + 300  # download + the loader's own timeout
DEFAULT_LIMITS = {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "20Gi"}


def selector(mv: dict) -> dict[str, str]:
    """The labels that select a version's verification Jobs and pods."""
    return {keys.MODELVERSION_UID: mv["metadata"]["uid"]}


def storage_port(endpoint: str, secure: bool) -> int:
    """The object store's port from the Secret's `endpoint` (host[:port])."""
    host_port = endpoint.rsplit("]", 1)[-1]  # an IPv6 literal's colons are not the port's
    return int(host_port.rsplit(":", 1)[1]) if ":" in host_port else (443 if secure else 80)


def labels(mv: dict) -> dict[str, str]:
    return selector(mv) | {keys.MODELVERSION: names.label_value(mv["metadata"]["name"]),
                            keys.MODEL: mv["spec"]["modelName"]} | keys.MANAGED_BY | COMPONENT


def desired_job(mv: dict, fingerprint: str, image: str, placement: dict, limits: dict | None = None) -> dict:
    meta, spec = mv["metadata"], mv["spec"]
    secret = spec["storage"]["secretRef"]["name"]
    env = [
        {"name": "MLCYCLE_ARTIFACT", "value": json.dumps(spec["artifact"], sort_keys=True)},
        {"name": "MLCYCLE_SECRET", "value": f"{meta['namespace']}/{secret}"},
        {"name": "MLCYCLE_TERMINATION_LOG", "value": TERMINATION_LOG},
        {"name": "TMPDIR", "value": SCRATCH},
        *podenv.storage_env(secret),
    ]
    if spec.get("signature"):
        env.append({"name": "MLCYCLE_SIGNATURE", "value": json.dumps(spec["signature"], sort_keys=True)})
    if previous := (mv.get("status") or {}).get("verifiedDigest"):
        env.append({"name": "MLCYCLE_PREVIOUS_DIGEST", "value": previous})
    limits = limits or DEFAULT_LIMITS
    container = {
        "name": "verify", "image": image, "command": ["mlcycle", "verify"], "env": env,
        "resources": {"limits": dict(limits), "requests": dict(limits)},
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",  # never the log: the model's own output must not reach status
        "volumeMounts": [{"name": "scratch", "mountPath": SCRATCH}],
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "runAsUser": 65532, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
    }
    pod = {"restartPolicy": "Never", "automountServiceAccountToken": False, "enableServiceLinks": False,
           "containers": [container], "volumes": [{"name": "scratch", "emptyDir": {}}], **placement}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"generateName": names.child_name(meta["name"], "verify", limit=57) + "-",
                     "namespace": meta["namespace"], "labels": labels(mv),
                     "annotations": {keys.FINGERPRINT_ANNOTATION: fingerprint,
                                     keys.OWNER_NAME_ANNOTATION: meta["name"]},
                     "ownerReferences": [owner_reference(KIND, meta["name"], meta["uid"])]},
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": DEADLINE_SECONDS, "ttlSecondsAfterFinished": 3600,
                 "template": {"metadata": {"labels": labels(mv)}, "spec": pod}},
    }


def desired_network_policy(mv: dict, storage_port: int) -> dict:
    """Egress of the version's verification pods: DNS and the object store's port only (no apiserver, no
    other service), and no ingress."""
    meta = mv["metadata"]
    dns = [{"protocol": p, "port": 53} for p in ("UDP", "TCP")]
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": names.child_name(meta["name"], "verify"), "namespace": meta["namespace"],
                     "labels": keys.MANAGED_BY | COMPONENT,
                     "ownerReferences": [owner_reference(KIND, meta["name"], meta["uid"])]},
        "spec": {"podSelector": {"matchLabels": selector(mv)}, "policyTypes": ["Ingress", "Egress"],
                 "egress": [{"ports": dns}, {"ports": [{"protocol": "TCP", "port": storage_port}]}]},
    }


def finished(job: dict) -> bool:
    return bool(job_condition(job, "Complete") or job_condition(job, "Failed"))


def outcome(job: dict, pods: list[dict]) -> verification.Verified | verification.VerificationFailed:
    """What a finished verification Job found. A pod that ended without a result (killed, out of memory, past
    its deadline) is a healable ProbeFailed: verified again after a backoff."""
    for pod in pods:
        if (result := verification.parse_result(termination_message(pod))) is not None:
            return result
    failed = job_condition(job, "Failed") or {}
    why = failed.get("reason") or "no result"
    if why == "DeadlineExceeded":
        detail = f"verification took longer than {DEADLINE_SECONDS}s"
    else:
        states = [(cs.get("state") or {}).get("terminated") or {} for p in pods
                  for cs in (p.get("status") or {}).get("containerStatuses") or []]
        detail = "; ".join(f"the verification pod ended with {t.get('reason') or 'an error'} (exit code "
                           f"{t.get('exitCode')})" for t in states if t) or f"the verification Job failed: {why}"
        if any(t.get("reason") == "OOMKilled" for t in states):
            detail += "; raise the verification memory limit (MLCYCLE_VERIFY_LIMITS)"
    return verification.VerificationFailed("ProbeFailed", detail)
