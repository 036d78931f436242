"""The base model and the types that all three kinds share.

Models are the single source of truth for the API: `crdgen` turns their JSON schema into the CRDs, and
the operator parses objects into them. Field names are snake_case in Python and camelCase on the wire.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, WithJsonSchema
from pydantic.alias_generators import to_camel

GROUP = "mlcycle.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Bounds on lists and strings keep the apiserver's CEL cost estimates low and stop runaway objects.
MAX_NAME = 253
MAX_URI = 2048
MAX_ITEMS = 64

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
S3_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"
SHA256_PATTERN = r"^sha256:[a-f0-9]{64}$"
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# A label key (and a taint key): an optional DNS-subdomain prefix and '/', then a name of at most 63 characters.
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
# resource.Quantity's textual form, e.g. 500m, 2, 1.5, 4Gi, 1e3; never negative (a pod's limits cannot be).
_DECIMAL = r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
QUANTITY_PATTERN = rf"^\+?{_DECIMAL}(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?{_DECIMAL}))?$"

DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, max_length=63)]
DnsSubdomain = Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN_PATTERN, max_length=MAX_NAME)]
S3Uri = Annotated[str, StringConstraints(pattern=S3_URI_PATTERN, max_length=MAX_URI)]
Sha256Digest = Annotated[str, StringConstraints(pattern=SHA256_PATTERN)]
ShortString = Annotated[str, StringConstraints(max_length=MAX_NAME)]
LabelValue = Annotated[str, StringConstraints(pattern=LABEL_VALUE_PATTERN, max_length=63)]
# A free-form JSON object: the apiserver keeps whatever is inside.
FreeForm = Annotated[dict[str, Any], WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True})]
Quantity = Annotated[
    int | Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN)],
    WithJsonSchema({"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN}),
]


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    """A controller owner reference to an object of this API: its children are garbage-collected with it."""
    return {"apiVersion": API_VERSION, "kind": kind, "name": name, "uid": uid, "controller": True,
            "blockOwnerDeletion": True}


def field_errors(error: ValidationError, prefix: str) -> list[str]:
    """A model's validation errors as `<prefix>.<field path>: <message>`, the way status reports them."""
    return [f"{prefix}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]


def rule(expression: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One CEL rule for `x-kubernetes-validations`; `field_path` (e.g. `.minReplicas`) is where the
    apiserver reports a failure, relative to the node that carries the rule."""
    return {"rule": expression, "message": message} | ({"fieldPath": field_path} if field_path else {})


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """`json_schema_extra` that attaches CEL rules to a model or field."""
    return {"x-kubernetes-validations": list(rules)}


def immutable(*fields: str) -> dict[str, Any]:
    """CEL transition rules, set on a kind's `spec`, that refuse changes to the named spec fields.

    Setting or unsetting an optional field counts as a change. (`self.?f == oldSelf.?f` would say the
    same more briefly, but the apiserver cannot bound the cost of comparing optionals and refuses it.)
    The rules sit on the kind's `spec`, not on the reusable spec model, so a TrainingJob spec embedded
    as a template elsewhere stays editable.
    """
    return validations(
        *(
            rule(
                f"has(self.{f}) == has(oldSelf.{f}) && (!has(self.{f}) || self.{f} == oldSelf.{f})",
                f"spec.{f} is immutable",
                f".{f}",
            )
            for f in fields
        )
    )


def list_type(kind: Literal["set", "map", "atomic"], *keys: str) -> dict[str, Any]:
    """`json_schema_extra` for a list: `set` means unique items, `map` means unique by `keys`."""
    extra: dict[str, Any] = {"x-kubernetes-list-type": kind}
    if keys:
        extra["x-kubernetes-list-map-keys"] = list(keys)
    return extra


class ApiModel(BaseModel):
    """Base of every API model: camelCase on the wire, snake_case in Python, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_api(self) -> dict[str, Any]:
        """The wire form: camelCase keys, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Condition(ApiModel):
    """A metav1.Condition-style observation of one aspect of the object's state."""

    type: str = Field(
        description="Condition type in CamelCase, e.g. Ready.",
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    status: Literal["True", "False", "Unknown"] = Field(description="Whether the condition holds.")
    reason: str = Field(
        "",
        description="Machine-readable CamelCase reason for the last transition.",
        max_length=1024,
        pattern=r"^([A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?)?$",
    )
    message: str = Field("", description="Human-readable details about the last transition.", max_length=32768)
    last_transition_time: datetime | None = Field(None, description="When the status last changed.")
    observed_generation: int | None = Field(
        None, ge=0, description="The .metadata.generation the condition was computed from."
    )


Conditions = Annotated[
    list[Condition],
    Field(max_length=32, json_schema_extra=list_type("map", "type")),
]


class SecretRef(ApiModel):
    """A reference to a Secret in the object's namespace."""

    name: DnsSubdomain = Field(description="Name of the Secret.")


class LocalRef(ApiModel):
    """A reference to another object of this API in the same namespace."""

    name: DnsSubdomain = Field(description="Name of the object.")


class Storage(ApiModel):
    """Where the S3-compatible object store's credentials come from."""

    secret_ref: SecretRef = Field(
        description=(
            "Secret in the same namespace with keys `endpoint` (host[:port]), `accessKey` and `secretKey`, "
            'and optionally `secure` ("true"/"false"; when absent, TLS only for an https:// endpoint) and `region`.'
        )
    )


class Resources(ApiModel):
    """Compute resources of one pod (one worker or one serving replica); requests equal limits."""

    cpu: Quantity | None = Field(None, description="CPU, as a Kubernetes quantity, e.g. 4 or 500m.")
    memory: Quantity | None = Field(None, description="Memory, as a Kubernetes quantity, e.g. 16Gi.")
    gpus: int = Field(0, ge=0, description="Number of nvidia.com/gpu to attach; a whole number.")


class Toleration(ApiModel):
    """A pod toleration, as in core/v1 Toleration."""

    # What the apiserver refuses in a pod template (so the Job or Deployment would never be created).
    model_config = ConfigDict(
        json_schema_extra=validations(
            rule("self.operator != 'Exists' || !has(self.value) || self.value == ''",
                 "a toleration with operator Exists has no value", ".value"),
            rule("self.operator == 'Exists' || (has(self.key) && self.key != '')",
                 "a toleration without a key needs operator Exists", ".key"),
            rule("!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
                 "tolerationSeconds needs effect NoExecute", ".tolerationSeconds"),
        )
    )

    key: Annotated[str, StringConstraints(pattern=f"{LABEL_KEY_PATTERN}|^$", max_length=MAX_NAME)] | None = Field(
        None, description="Taint key to tolerate (a label key); empty with Exists matches all."
    )
    operator: Literal["Exists", "Equal"] = Field("Equal", description="How key and value are compared.")
    value: LabelValue | None = Field(None, description="Taint value to match with operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        None, description="For NoExecute: how long the pod stays bound after the taint appears."
    )


class KeyRef(ApiModel):
    """A key in a Secret or ConfigMap of the same namespace."""

    name: DnsSubdomain = Field(description="Name of the Secret or ConfigMap.")
    key: ShortString = Field(description="The key to read.")
    optional: bool = Field(False, description="Whether the variable may be left unset when the key is missing.")


class FieldRef(ApiModel):
    """A field of the pod, as in core/v1 ObjectFieldSelector."""

    # The paths core/v1 supports for environment variables (others are refused in the pod template).
    field_path: str = Field(
        description="Path of the field, e.g. metadata.name or status.podIP.",
        max_length=MAX_NAME,
        pattern=r"^(metadata\.(name|namespace|uid)|metadata\.(labels|annotations)\['[^']+'\]|spec\.(nodeName|"
        r"serviceAccountName)|status\.(hostIP|hostIPs|podIP|podIPs))$",
    )
    api_version: ShortString | None = Field(None, description="API version the path is written in; v1.")


class EnvVarSource(ApiModel):
    """Where an environment variable's value comes from; set exactly one source."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "[has(self.secretKeyRef), has(self.configMapKeyRef), has(self.fieldRef)].filter(x, x).size() == 1",
                "valueFrom must set exactly one of secretKeyRef, configMapKeyRef, fieldRef",
            )
        )
    )

    secret_key_ref: KeyRef | None = Field(None, description="A key of a Secret.")
    config_map_key_ref: KeyRef | None = Field(None, description="A key of a ConfigMap.")
    field_ref: FieldRef | None = Field(None, description="A field of the pod.")


class EnvVar(ApiModel):
    """An environment variable for the containers: a literal value or a reference."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule("!(has(self.value) && has(self.valueFrom))", "set value or valueFrom, not both")
        )
    )

    name: str = Field(description="Variable name.", pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", max_length=MAX_NAME)
    value: str | None = Field(None, description="Literal value.", max_length=32768)
    value_from: EnvVarSource | None = Field(None, description="Take the value from a Secret, ConfigMap or the pod.")


EnvList = Annotated[list[EnvVar], Field(max_length=MAX_ITEMS, json_schema_extra=list_type("map", "name"))]
NodeSelector = Annotated[
    dict[str, LabelValue],
    Field(
        max_length=MAX_ITEMS,
        json_schema_extra=validations(
            rule(f"self.all(k, k.matches(r'{LABEL_KEY_PATTERN}'))", "every key must be a label key, e.g. "
                 "example.com/pool or disktype")
        ),
    ),
]
Tolerations = Annotated[list[Toleration], Field(max_length=32)]
Metrics = Annotated[dict[str, float], Field(max_length=MAX_ITEMS)]
Aliases = Annotated[list[DnsLabel], Field(max_length=16, json_schema_extra=list_type("set"))]
# The drift statistics a user can ask for (mlcycle.drift.stats.METHODS): serving's drift checks and training's
# data validation.
DriftMethod = Literal["auto", "psi", "ks", "chi2", "wasserstein", "jensenshannon"]


# Cron, exactly as the CronJob controller parses it (robfig/cron's standard parser): five fields (minute hour
# day-of-month month day-of-week) separated by blanks, each a list of `*` or `?`, `n`, `n-m`, optionally with
# a positive `/step`, `n/step` meaning n through the end; month and day-of-week also take names (JAN, mon,
# case-insensitive); day-of-week is 0-6 (7 is refused); or @yearly, @annually, @monthly, @weekly, @daily,
# @midnight, @hourly, or `@every <Go duration>`. Not checked by the pattern: a range whose start exceeds its end.
def _cron_field(value: str) -> str:
    item = rf"(([*?]|{value}(-{value})?)(/0*[1-9][0-9]*)?)"
    return rf"{item}(,{item})*"


_MONTH_NAMES = r"(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
_DAY_NAMES = r"(?i:sun|mon|tue|wed|thu|fri|sat)"
_CRON_VALUES = (
    r"0*[0-5]?[0-9]",
    r"0*(1[0-9]|2[0-3]|[0-9])",
    r"0*(3[01]|[12][0-9]|[1-9])",
    rf"(0*(1[0-2]|[1-9])|{_MONTH_NAMES})",
    rf"(0*[0-6]|{_DAY_NAMES})",
)
_GO_DURATION = r"([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)"
CRON_PATTERN = (
    rf"^[ \t]*(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|@every[ \t]+({_GO_DURATION})+|"
    + r"[ \t]+".join(f"({_cron_field(v)})" for v in _CRON_VALUES)
    + r")[ \t]*$"
)
DURATION_PATTERN = r"^([0-9]+(s|m|h|d))+$"
