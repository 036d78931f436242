"""The canary split of one agent: where its canary is, and which requests go there.

The operator sets it with `PUT /traffic` on the admin port (a rollout walks its steps this way) or
through the MLCYCLE_CANARY_* env at start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class InvalidTraffic(ValueError):
    pass


@dataclass(frozen=True)
class Traffic:
    canary_url: str | None = None
    canary_percent: int = 0
    canary_model_version: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.canary_percent, bool) or not isinstance(self.canary_percent, int) \
                or not 0 <= self.canary_percent <= 100:
            raise InvalidTraffic(f"canaryPercent must be an integer from 0 to 100, not {self.canary_percent!r}")
        if self.canary_url is not None:
            parts = urlsplit(self.canary_url) if isinstance(self.canary_url, str) else None
            if not parts or parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
                raise InvalidTraffic(f"canaryUrl must be http(s)://host[:port], not {self.canary_url!r}")
        if self.canary_percent and not self.canary_url:
            raise InvalidTraffic("canaryPercent > 0 needs a canaryUrl")
        if self.canary_model_version is not None and not isinstance(self.canary_model_version, str):
            raise InvalidTraffic(f"canaryModelVersion must be a string, not {self.canary_model_version!r}")

    @classmethod
    def from_json(cls, doc: Any) -> Traffic:
        if not isinstance(doc, dict):
            raise InvalidTraffic("the traffic document must be a JSON object")
        unknown = set(doc) - {"canaryUrl", "canaryPercent", "canaryModelVersion"}
        if unknown:
            raise InvalidTraffic(f"unknown fields: {', '.join(sorted(unknown))}")
        return cls(doc.get("canaryUrl"), doc.get("canaryPercent", 0), doc.get("canaryModelVersion"))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Traffic:
        percent = env.get("MLCYCLE_CANARY_PERCENT", "0") or "0"
        try:
            value = int(percent)
        except ValueError as e:
            raise InvalidTraffic(f"MLCYCLE_CANARY_PERCENT must be an integer, not {percent!r}") from e
        return cls(env.get("MLCYCLE_CANARY_URL") or None, value, env.get("MLCYCLE_CANARY_MODEL_VERSION") or None)

    def to_json(self) -> dict[str, Any]:
        return {"canaryUrl": self.canary_url, "canaryPercent": self.canary_percent,
                "canaryModelVersion": self.canary_model_version}


class Splitter:
    """Chooses, request by request, whether the canary answers: exactly `canaryPercent` of every 100
    consecutive requests, spread evenly (error diffusion), rather than a coin flip per request. So a
    rollout step at 5% sends the candidate 5 requests in 100, never a random burst of them."""

    def __init__(self, traffic: Traffic):
        self.traffic = traffic
        self._credit = 0

    def set(self, traffic: Traffic) -> None:
        self.traffic = traffic
        self._credit = 0

    def to_canary(self) -> bool:
        self._credit += self.traffic.canary_percent
        if self._credit >= 100:
            self._credit -= 100
            return True
        return False
