"""`mlcycle verify`: the verification pod of one ModelVersion (modelversion/verifyjob.py writes its Job).

Downloads the artifact while hashing it, checks the digest, the format and the signature (a TorchScript is
loaded and run once, in a child process whose env holds no credentials), and reports the outcome as JSON in the
termination message. The pod mounts no ServiceAccount token: the model's code, which runs here, can reach
nothing but what this pod's storage credentials reach — and those stay in this parent process.

Env: MLCYCLE_ARTIFACT (spec.artifact as JSON), MLCYCLE_SIGNATURE (spec.signature as JSON, optional),
MLCYCLE_PREVIOUS_DIGEST (what an earlier verification found, optional), MLCYCLE_SECRET (namespace/name of the
storage Secret, for messages), the storage env (podenv.storage_env) and MLCYCLE_TERMINATION_LOG.
"""

from __future__ import annotations

import json
import os
import sys

from mlcycle import redaction
from mlcycle.clients import s3
from mlcycle.modelversion import verification
from mlcycle.training import DEFAULT_TERMINATION_LOG

CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def run(env: dict[str, str]) -> verification.Verified | verification.VerificationFailed:
    artifact = json.loads(env["MLCYCLE_ARTIFACT"])
    signature = json.loads(env["MLCYCLE_SIGNATURE"]) if env.get("MLCYCLE_SIGNATURE") else None
    secret = env.get("MLCYCLE_SECRET", "")
    try:
        client = s3.client(s3.S3Config.from_env(env))
    except ValueError as e:
        return verification.VerificationFailed("SecretProblem", f"spec.storage.secretRef {secret}: {e}")
    try:
        return verification.verify(client, artifact, signature, env.get("MLCYCLE_PREVIOUS_DIGEST") or None, secret,
                                   env.get("TMPDIR") or None)
    except verification.VerificationFailed as e:
        # The message can quote the model's own loader: its text is the model author's choice.
        e.message = redaction.redact(e.message, [env.get(k, "") for k in CREDENTIAL_ENV],
                                     verification.RESULT_MESSAGE_LIMIT)
        return e


def main(argv: list[str]) -> int:
    outcome = run(dict(os.environ))
    message = verification.result_message(outcome)
    print(message, flush=True)
    path = os.environ.get("MLCYCLE_TERMINATION_LOG", DEFAULT_TERMINATION_LOG)
    try:
        with open(path, "w") as f:
            f.write(message)
    except OSError as e:
        print(f"could not write the termination message to {path}: {e}", file=sys.stderr)
        return 1
    return 0
