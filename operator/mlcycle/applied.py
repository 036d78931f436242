"""Compare-then-apply: skip the server-side apply of a child that already is what the operator would apply.

An apply that changes nothing still costs the apiserver a full merge and the operator a request. A child is
left alone when every field of the desired manifest has the same value in the observed object, the
annotation with the manifest's digest included: a field dropped from the manifest changes the digest, so
the apply that removes it still happens; a field someone else changed or removed makes the values differ,
so the apply that takes it back still happens. Defaults the apiserver adds are fields the manifest does not
name, so they are not compared. A value the apiserver rewrites (e.g. a quantity "1000m" stored as "1") only
costs an apply, as before.
"""

from __future__ import annotations

import hashlib
import json

from mlcycle.api.labels import APPLIED_DIGEST_ANNOTATION


def stamped(desired: dict) -> dict:
    """`desired` with the digest of its own content in an annotation."""
    meta = desired["metadata"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != APPLIED_DIGEST_ANNOTATION}
    bare = {**desired, "metadata": {**meta, "annotations": annotations}}
    digest = hashlib.sha256(json.dumps(bare, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
    return {**desired, "metadata": {**meta, "annotations": {**annotations, APPLIED_DIGEST_ANNOTATION: digest}}}


def needs_apply(desired: dict, observed: dict | None) -> bool:
    """Whether applying `desired` (stamped) could change `observed` (None: the child does not exist)."""
    return observed is None or not _covers(observed, desired)


def _covers(observed, desired) -> bool:
    if isinstance(desired, dict):
        return isinstance(observed, dict) and all(
            observed.get(key) is None if value is None else key in observed and _covers(observed[key], value)
            for key, value in desired.items())
    if isinstance(desired, list):
        return isinstance(observed, list) and len(observed) == len(desired) and all(
            _covers(o, d) for o, d in zip(observed, desired, strict=True))
    return observed == desired and isinstance(observed, bool) == isinstance(desired, bool)
