"""Redaction of text that comes out of a pod (a termination message, the last lines of a user image's log, a
model loader's error) before it reaches status, an Event or the operator's log: those are readable by far
more people than the Secrets a pod can see.

What goes: the given secret values (the referenced Secret's), credentials in URLs, `NAME=value` where the name
looks like a credential (AWS_*, *TOKEN*, *SECRET*, *PASSWORD*, *KEY*), bearer tokens and JWTs, AWS access key
ids; then the text is cut to `limit` characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
MESSAGE_LIMIT = 1024
# Shorter values are too likely to be ordinary words ("true", a region) to be replaced everywhere.
MIN_SECRET_LENGTH = 4

_WORDS = "token|secret|password|passwd|access_?key|api_?key|private_?key|credential"
_VALUE = r"""("[^"]*"|'[^']*'|[^\s,;&"'}]+)"""
_PATTERNS = (
    # scheme://user:password@host -> scheme://***@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@:]*(:[^\s/@]*)?@"), rf"\1{MASK}@"),
    # NAME=value / NAME: value for environment-style credential names (AWS_*, *_TOKEN, *SECRET*, ...)
    (re.compile(rf"(\b[A-Z0-9_]*(?:AWS_|{_WORDS.upper()})[A-Z0-9_]*\s*[=:]\s*){_VALUE}"), rf"\1{MASK}"),
    # "secretKey": "value", 'token': 'value' (JSON, YAML, Python reprs) and password=value, --token=value
    (re.compile(rf"""(?i)(["'][a-z0-9_-]*(?:{_WORDS})[a-z0-9_-]*["']\s*:\s*){_VALUE}"""), rf"\1{MASK}"),
    (re.compile(rf"(?i)(\b[a-z0-9_-]*(?:{_WORDS})[a-z0-9_-]*=){_VALUE}"), rf"\1{MASK}"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {MASK}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), MASK),  # a JWT (SA tokens)
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), MASK),
)


def redact(text: str, secrets: Iterable[str] = (), limit: int | None = MESSAGE_LIMIT) -> str:
    """`text` without the secrets and credential patterns, at most `limit` characters (None: no cap)."""
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def redact_status(status: dict, secrets: Iterable[str] = ()) -> dict:
    """A status with `message` and every condition message redacted (other fields are structured)."""
    secrets = list(secrets)
    out = dict(status)
    if isinstance(out.get("message"), str):
        out["message"] = redact(out["message"], secrets)
    if out.get("conditions"):
        out["conditions"] = [{**c, "message": redact(c.get("message") or "", secrets)} for c in out["conditions"]]
    return out
