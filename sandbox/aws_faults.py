"""AWS failures injected into a real botocore client, so the code under test meets real ``ClientError``s and lost
answers.

botocore emits ``before-call.<service>.<operation>`` with ``emit_until_response`` right before it sends a request:
an exception raised by a handler propagates out of the client call unchanged and nothing is sent; a handler that
returns None lets the call go ahead. botocore's own retries wrap the HTTP send, which comes later, so each refusal
here is exactly one failed call as the store sees it. ``after-call.<service>.<operation>`` comes once the answer is
parsed: an exception raised there is an answer lost after the call took effect.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError, ReadTimeoutError

CREATE_SECRET_EVENT = "before-call.secrets-manager.CreateSecret"


@dataclass
class ThrottledCreateSecret:
    """Refuses the first ``refusals`` CreateSecret calls with ``ThrottlingException`` (every call when None)."""

    refusals: int | None
    bodies: list[dict[str, Any]] = field(default_factory=list)  # every CreateSecret request, as sent

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        self.bodies.append(json.loads(params["body"]))
        if self.refusals is None or len(self.bodies) <= self.refusals:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "CreateSecret")

    def tokens(self) -> set[str]:
        """Every access and refresh token the caller tried to write."""
        pairs = [json.loads(body["SecretString"]) for body in self.bodies]
        return {pair[key] for pair in pairs for key in ("access_token", "refresh_token") if pair.get(key)}


@contextmanager
def throttled_create_secret(client: Any, refusals: int | None) -> Iterator[ThrottledCreateSecret]:
    """Throttle ``client``'s CreateSecret calls while the block runs."""
    hook = ThrottledCreateSecret(refusals)
    unique_id = f"tests-throttled-create-secret-{id(hook)}"
    client.meta.events.register(CREATE_SECRET_EVENT, hook, unique_id=unique_id)
    try:
        yield hook
    finally:
        client.meta.events.unregister(CREATE_SECRET_EVENT, unique_id=unique_id)


# The calls that change something: the ones whose lost answers matter.
WRITES = {
    "secrets-manager": ("PutSecretValue", "UpdateSecretVersionStage", "CreateSecret", "TagResource"),
    "dynamodb": ("UpdateItem", "PutItem"),
}
READS = {"secrets-manager": ("GetSecretValue", "DescribeSecret", "ListSecrets"), "dynamodb": ("GetItem",)}
_THROTTLED = {"secrets-manager": "ThrottlingException", "dynamodb": "ThrottlingException"}


@dataclass
class Chaos:
    """Seeded, random AWS faults in a real client: ``refuse_rate`` of the calls are throttled before they are sent
    (nothing happens), ``lose_rate`` of the writes take effect and then lose their answer (a read timeout)."""

    seed: int
    refuse_rate: float
    lose_rate: float
    injected: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def install(self, client: Any, service: str) -> None:
        for operation in (*WRITES[service], *READS[service]):
            client.meta.events.register(f"before-call.{service}.{operation}", self._refuse(service, operation))
        for operation in WRITES[service]:
            client.meta.events.register(f"after-call.{service}.{operation}", self._lose(service, operation))

    def _refuse(self, service: str, operation: str) -> Any:
        def refuse(**_: Any) -> None:
            if self._rng.random() < self.refuse_rate:
                self.injected.append(f"{service}.{operation}:throttled")
                raise ClientError({"Error": {"Code": _THROTTLED[service], "Message": "chaos"}}, operation)

        return refuse

    def _lose(self, service: str, operation: str) -> Any:
        def lose(**_: Any) -> None:
            if self._rng.random() < self.lose_rate:
                self.injected.append(f"{service}.{operation}:answer_lost")
                raise ReadTimeoutError(endpoint_url=f"chaos://{service}")

        return lose
