"""The app's configuration secrets: the Slack app's credentials and the key that signs install state.

Read with Powertools Parameters' ``SecretsProvider`` (its cache keeps each value for ``max_age`` seconds in a warm
process), on the functions' own Secrets Manager client (``store.make_client``: bounded timeouts,
``AWS_ENDPOINT_URL`` honoured). Errors come out as this package's: a missing secret or a bad value is a
``ConfigError``; anything else from Secrets Manager a ``StoreError``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import BotoCoreError, ClientError

from slack_tokens.config import AppCredentials
from slack_tokens.errors import ConfigError, SecretNotFoundError
from slack_tokens.state import MIN_KEY_BYTES
from slack_tokens.store import translate


class AppSecrets:
    """The app credentials secret and (for the install flow) the state key secret, cached for ``max_age``."""

    def __init__(self, client: Any, *, app_secret_id: str, state_secret_id: str | None, max_age: int = 300) -> None:
        self._provider = SecretsProvider(boto3_client=client)
        self._app_secret_id = app_secret_id
        self._state_secret_id = state_secret_id
        self._max_age = max_age

    def app_credentials(self) -> AppCredentials:
        return AppCredentials.from_secret_string(self._read(self._app_secret_id))

    def state_key(self) -> str:
        if not self._state_secret_id:
            raise ConfigError("SLACK_STATE_SECRET_ID is not set")
        key = self._read(self._state_secret_id)
        if len(key.encode("utf-8")) < MIN_KEY_BYTES:
            raise ConfigError(f"the state key secret must hold at least {MIN_KEY_BYTES} bytes")
        return key

    def invalidate(self) -> None:
        """Forget cached values (e.g. after Slack said ``bad_client_secret``: the secret may have changed)."""
        self._provider.clear_cache()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated

    def _read(self, secret_id: str) -> str:
        try:
            value = self._provider.get(secret_id, max_age=self._max_age, VersionStage="AWSCURRENT")
        except GetParameterError as exc:
            raise _translated(exc, secret_id) from None
        if not isinstance(value, str):
            raise ConfigError(f"configuration secret {secret_id} must hold a string, not binary data")
        return value


def _translated(exc: GetParameterError, secret_id: str) -> Exception:
    """Powertools wraps the botocore error it met (as the exception's context): ours, from that error."""
    cause = exc.__context__
    if not isinstance(cause, ClientError | BotoCoreError):
        return ConfigError(f"configuration secret {secret_id} could not be read")
    error = translate(cause, "GetSecretValue", secret_id)
    if isinstance(error, SecretNotFoundError):
        return ConfigError(f"configuration secret {secret_id} does not exist")
    return error


__all__ = ["AppSecrets"]
