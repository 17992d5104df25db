"""Secrets Manager failures injected into a real botocore client, so the code under test meets real ``ClientError``s.

botocore emits ``before-call.<service>.<operation>`` with ``emit_until_response`` right before it sends a request:
an exception raised by a handler propagates out of the client call unchanged and nothing is sent; a handler that
returns None lets the call go ahead. botocore's own retries wrap the HTTP send, which comes later, so each refusal
here is exactly one failed call as the store sees it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

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
