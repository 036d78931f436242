"""Names and label values of what the operator writes, kept within Kubernetes' limits.

An object's name may have 253 characters and dots; a label value has at most 63, and a Service (and a pod
hostname) must be an RFC 1035 label: lower-case letters, digits and '-', starting with a letter, at most 63.
What does not fit is cleaned, cut and given a short hash of the original, as Kubernetes' own controllers
do: deterministic (the same input gives the same name on every reconcile) and unique in practice.
"""

from __future__ import annotations

import hashlib
import re

DNS_LABEL_MAX = 63
LABEL_VALUE_MAX = 63
HASH_LENGTH = 8

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def stable_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def child_name(base: str, suffix: str = "", limit: int = DNS_LABEL_MAX) -> str:
    """`<base>-<suffix>` as an RFC 1035 label of at most `limit` characters (valid for every kind, Services
    included). Unchanged when it already is one; otherwise `<cleaned base, cut>-<hash>-<suffix>`, so the suffix
    stays readable. `suffix` must itself be short and RFC 1035-clean (e.g. "canary", "drift")."""
    name = f"{base}-{suffix}" if suffix else base
    if len(name) <= limit and _DNS1035.match(name):
        return name
    tail = f"-{stable_hash(name)}" + (f"-{suffix}" if suffix else "")
    head = re.sub(r"[^a-z0-9-]+", "-", base.lower())
    if not head[:1].isalpha():
        head = "x" + head  # an RFC 1035 label starts with a letter (e.g. a name like 2026-churn)
    head = head[: max(1, limit - len(tail))].rstrip("-")
    return head + tail


def label_value(text: str) -> str:
    """`text` as a label value (at most 63 of [-A-Za-z0-9_.], alphanumeric at both ends): unchanged when it
    is one, else cleaned, cut and ended with a hash of the original. Selectors must use the same value."""
    if len(text) <= LABEL_VALUE_MAX and _LABEL_VALUE.match(text):
        return text
    tail = f"-{stable_hash(text)}"
    head = re.sub(r"[^-A-Za-z0-9_.]+", "-", text)[: LABEL_VALUE_MAX - len(tail)]
    head = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", head)
    return (head + tail) if head else tail[1:]
