"""boto3 for the command: one session (``--profile``, ``--region``, or the local stack's endpoint and fake
credentials), clients with bounded timeouts, and every AWS failure turned into a one-line ``CliError`` that says
what to do: no credentials, an unknown profile or region, an unreachable endpoint, or access denied naming the IAM
action that was refused."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import (
    ConnectTimeoutError as BotoConnectTimeout,
)

from slack_tokens_cli.errors import CliError

T = TypeVar("T")

DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
BAD_CREDENTIALS = {
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
}
# IAM action names that differ from the API operation's name.
_ACTIONS = {("lambda", "Invoke"): "lambda:InvokeFunction"}
_HINT = "the stack's TokenOperatorPolicy (output TokenOperatorPolicyArn) grants everything slack-tokens uses"


class Aws:
    """Clients of one session. ``endpoint`` (the local stack's moto) applies to every service but Lambda, which
    has ``lambda_endpoint`` (the local stack's Lambda API)."""

    def __init__(
        self,
        *,
        profile: str | None = None,
        region: str | None = None,
        endpoint: str | None = None,
        lambda_endpoint: str | None = None,
        credentials: dict[str, str] | None = None,
    ) -> None:
        try:
            self.session = boto3.Session(profile_name=profile, region_name=region, **(credentials or {}))
        except ProfileNotFound:
            raise CliError(f"AWS profile {profile!r} is not in your AWS config (~/.aws/config)") from None
        self.region = self.session.region_name
        self._endpoint = endpoint
        self._lambda_endpoint = lambda_endpoint
        self.denied: str | None = None  # the IAM action of the last call refused for access
        self._clients: dict[str, Any] = {}

    def client(self, service: str, *, read_timeout: float = 10.0, attempts: int = 3) -> Any:
        key = f"{service}/{read_timeout}/{attempts}"
        if key not in self._clients:
            endpoint = self._lambda_endpoint if service == "lambda" else self._endpoint
            config = Config(
                connect_timeout=3,
                read_timeout=read_timeout,
                retries={"mode": "standard", "total_max_attempts": attempts},
            )
            try:
                client = self.session.client(service, endpoint_url=endpoint, config=config)
            except NoRegionError:
                raise CliError(
                    "no AWS region: pass --region, set AWS_REGION, or set region in samconfig.toml"
                ) from None
            client.meta.events.register("after-call", self._note_denial)
            self._clients[key] = client
        return self._clients[key]

    def _note_denial(self, http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        code = (parsed or {}).get("Error", {}).get("Code", "")
        if code in DENIED:
            service = model.service_model.service_name
            self.denied = _ACTIONS.get((service, model.name), f"{service}:{model.name}")

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``, with any AWS failure raised as a ``CliError`` about ``what`` (e.g. "list the pairs")."""
        try:
            return fn()
        except (ClientError, BotoCoreError) as exc:
            raise self.explain(exc, what) from None

    def pages(self, what: str, client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item under ``key`` of every page of ``operation``."""
        try:
            for page in client.get_paginator(operation).paginate(**kwargs):
                yield from page.get(key, [])
        except (ClientError, BotoCoreError) as exc:
            raise self.explain(exc, what) from None

    def explain(self, exc: Exception, what: str) -> CliError:
        return explain(exc, what, denied=self.denied)


def access_denied(what: str, action: str | None) -> CliError:
    return CliError(f"cannot {what}: access denied - your AWS identity lacks {action or 'a permission'} ({_HINT})")


def explain(exc: Exception, what: str, *, denied: str | None = None) -> CliError:
    """One line an operator can act on, for any botocore failure (never its traceback)."""
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return CliError(
            f"cannot {what}: no AWS credentials found. Pass --profile, set AWS_PROFILE or the AWS_* keys, "
            "or log in (aws sso login / aws configure)"
        )
    if isinstance(exc, NoRegionError):
        return CliError(f"cannot {what}: no AWS region; pass --region or set AWS_REGION")
    if isinstance(exc, EndpointConnectionError | BotoConnectTimeout):
        return CliError(f"cannot {what}: {exc}")
    if isinstance(exc, ClientError):
        return _refused(exc, what, denied)
    return CliError(f"cannot {what}: {type(exc).__name__}: {exc}")


def _refused(exc: ClientError, what: str, denied: str | None) -> CliError:
    """AWS answered with an error: denied, bad credentials, or anything else (its code and message)."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    if code in DENIED:
        return access_denied(what, denied or f"the permission for {exc.operation_name}")
    if code in BAD_CREDENTIALS:
        return CliError(f"cannot {what}: AWS refused the credentials ({code}); refresh them (e.g. aws sso login)")
    return CliError(f"cannot {what}: {exc.operation_name} failed: {code} {error.get('Message', '')}".rstrip())
