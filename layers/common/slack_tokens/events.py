"""The events the rotate and exchange functions accept, checked before any work is done.

A schedule's event (anything that is not one of these shapes' keys) sweeps; ``{"secret_id": ...}`` rotates one pair
now. The exchange takes ``{}``, ``{"secret_ids": [...]}`` and ``{"dry_run": true}``. A bad event raises ``BadEvent``
with a message that says what is wrong; the handler answers it with a refused summary (``Summary.refused``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeGuard

MAX_SECRET_ID = 2048  # Secrets Manager's longest secret ARN


class BadEvent(ValueError):
    """The invocation's event is not one this function accepts (nothing was attempted)."""


@dataclass(frozen=True)
class RotateRequest:
    secret_id: str | None = None  # None: sweep every due pair


@dataclass(frozen=True)
class ExchangeRequest:
    secret_ids: list[str] | None = None  # None: every legacy pair under the prefix
    dry_run: bool = False


def _secret_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and 1 <= len(value) <= MAX_SECRET_ID


def rotate_request(event: object) -> RotateRequest:
    secret_id = event.get("secret_id") if isinstance(event, Mapping) else None
    if secret_id is None:
        return RotateRequest()
    if not _secret_id(secret_id):
        raise BadEvent("secret_id must be a secret name or ARN")
    return RotateRequest(secret_id)


def exchange_request(event: object) -> ExchangeRequest:
    body = event if isinstance(event, Mapping) else {}
    secret_ids, dry_run = body.get("secret_ids"), body.get("dry_run", False)
    if secret_ids is not None and not (isinstance(secret_ids, list) and all(_secret_id(s) for s in secret_ids)):
        raise BadEvent("secret_ids must be a list of secret names or ARNs")
    if not isinstance(dry_run, bool):
        raise BadEvent("dry_run must be true or false")
    return ExchangeRequest(secret_ids, dry_run)


__all__ = ["BadEvent", "ExchangeRequest", "RotateRequest", "exchange_request", "rotate_request"]
