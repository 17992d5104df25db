"""The one module that speaks to AWS Secrets Manager (boto3).

``TokenStore`` keeps one secret per token pair (names: ``models.PairKey``; value: ``models.TokenPair``; version
ids: ``models.new_version_id``). Every botocore error becomes a ``StoreError`` subclass here (``translate``);
nothing above sees botocore.

The store's words, and what they are in Secrets Manager: a pair's **current** version is the one staged
``AWSCURRENT``; an **unpromoted** version is one staged ``AWSPENDING`` but not ``AWSCURRENT`` (written by
``stage``, made current by ``promote``, a compare-and-swap of ``AWSCURRENT``). Nothing outside this module names
a staging label.

Reads always name ``VersionStage="AWSCURRENT"`` (or an explicit version id): never rely on the default stage.
Writes carry a ``ClientRequestToken`` made once per value, so repeating a write whose answer was lost is
idempotent; ``_retrying`` repeats retryable failures until the caller's deadline. ``write_worst_seconds`` is the
longest one write call can take, for callers that must keep time for a write they cannot lose.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from slack_tokens.errors import (
    SecretNotFoundError,
    StoreError,
    VersionConflictError,
)
from slack_tokens.models import PairKey, TokenPair, new_version_id

AWSCURRENT = "AWSCURRENT"
AWSPENDING = "AWSPENDING"
STATUS_TAG = "slack:status"

_RETRYABLE_CODES = {
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "InternalServiceError",
    "InternalFailure",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeoutException",
}

T = TypeVar("T")


# Client timeouts bound the worst case of ONE call, so callers can check that a write still fits the time they have
# left. botocore's ``total_max_attempts`` counts the first attempt (its ``max_attempts`` counts only retries).
_CONNECT_TIMEOUT, _READ_TIMEOUT, _ATTEMPTS = 1.0, 3.0, 2


def make_client() -> Any:
    """A Secrets Manager client with bounded timeouts. Honours ``AWS_ENDPOINT_URL`` (local emulator)."""
    config = Config(
        connect_timeout=_CONNECT_TIMEOUT,
        read_timeout=_READ_TIMEOUT,
        retries={"mode": "standard", "total_max_attempts": _ATTEMPTS},
        max_pool_connections=32,  # the rotator's worker threads share this client
    )
    return boto3.client("secretsmanager", config=config)


def worst_call_seconds(config: Config) -> float:
    """The longest one call through a client with ``config`` can take: every attempt at its connect and read
    timeouts, plus standard mode's backoff before each retry (at most 2**(n-1) s before retry n, capped at 20 s)."""
    retries = config.retries or {}
    attempts = int(retries.get("total_max_attempts") or retries.get("max_attempts", 2) + 1)
    per_attempt = float(config.connect_timeout) + float(config.read_timeout)
    return attempts * per_attempt + sum(min(2.0**retry, 20.0) for retry in range(attempts - 1))


def translate(exc: Exception, action: str, name: str) -> StoreError:
    """The ``StoreError`` for a botocore error of ``action`` on secret ``name``."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            return SecretNotFoundError(f"{action}: secret {name} does not exist", code=code)
        if code == "InvalidRequestException" and "deleted" in str(exc).lower():
            return SecretNotFoundError(f"{action}: secret {name} is scheduled for deletion (retired)", code=code)
        if code in {"AccessDeniedException", "AccessDenied"}:
            return StoreError(f"{action}: access denied on {name}; check the function's IAM policy", code=code)
        return StoreError(f"{action} on {name} failed: {code}", code=code, retryable=code in _RETRYABLE_CODES)
    # BotoCoreError: endpoint unreachable, connect/read timeout, ...
    return StoreError(f"{action} on {name} failed: {type(exc).__name__}", code=type(exc).__name__, retryable=True)


def _tags(pair: TokenPair) -> dict[str, str]:
    """Identity and status tags of a pair's secret."""
    return {**pair.key.tags(), STATUS_TAG: pair.status}


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


@dataclass(slots=True, eq=False)
class SecretMeta:
    """What ``DescribeSecret``/``ListSecrets`` tell about a secret, without its value."""

    name: str
    arn: str
    versions: dict[str, list[str]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    deleted: bool = False

    @classmethod
    def from_api(cls, entry: dict[str, Any]) -> SecretMeta:
        versions = entry.get("VersionIdsToStages") or entry.get("SecretVersionsToStages") or {}
        tags = {tag["Key"]: tag.get("Value", "") for tag in entry.get("Tags") or []}
        return cls(
            name=entry["Name"],
            arn=entry.get("ARN", ""),
            versions=dict(versions),
            tags=tags,
            deleted=entry.get("DeletedDate") is not None,
        )

    @property
    def current(self) -> str | None:
        """The current version's id (``None``: the secret has no current version, e.g. a half-made secret)."""
        return self._version_with(AWSCURRENT)

    @property
    def unpromoted(self) -> str | None:
        """A version stored after the current one and not promoted (yet): a rotation that may need finishing."""
        pending = self._version_with(AWSPENDING)
        return pending if pending != self.current else None

    def _version_with(self, stage: str) -> str | None:
        return next((vid for vid, stages in self.versions.items() if stage in stages), None)


class StoredPair(NamedTuple):
    name: str
    version_id: str
    pair: TokenPair


class TokenStore:
    """Token-pair secrets under one name prefix."""

    def __init__(
        self,
        client: Any,
        prefix: str,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self.prefix = prefix
        self._monotonic = monotonic
        self._sleep = sleep
        self._write_worst = worst_call_seconds(client.meta.config)

    def name_for(self, key: PairKey) -> str:
        return key.secret_name(self.prefix)

    @property
    def write_worst_seconds(self) -> float:
        """The longest one write can take (every attempt at its client's timeouts, and the backoff between them):
        how much time a caller holding a pair nobody else has must keep for storing it."""
        return self._write_worst

    # -- reads -------------------------------------------------------------------------------------------------

    def describe(self, name: str) -> SecretMeta | None:
        try:
            return SecretMeta.from_api(self._client.describe_secret(SecretId=name))
        except (ClientError, BotoCoreError) as exc:
            error = translate(exc, "DescribeSecret", name)
            if isinstance(error, SecretNotFoundError):
                return None
            raise error from None

    def read(self, name: str, *, version_id: str | None = None) -> StoredPair:
        """The pair at ``version_id``, or the current one when none is given."""
        selector = {"VersionId": version_id} if version_id else {"VersionStage": AWSCURRENT}
        try:
            answer = self._client.get_secret_value(SecretId=name, **selector)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "GetSecretValue", name) from None
        return StoredPair(
            name=answer["Name"],
            version_id=answer["VersionId"],
            pair=TokenPair.from_secret_string(answer["SecretString"]),
        )

    def list_pairs(self, under: str = "") -> Iterator[SecretMeta]:
        """Every secret under the prefix (and ``under`` it, e.g. ``team/T1/``), with tags and version stages, from
        one paginated ListSecrets."""
        start = self.prefix + under
        paginator = self._client.get_paginator("list_secrets")
        pages = paginator.paginate(Filters=[{"Key": "name", "Values": [start]}], PaginationConfig={"PageSize": 100})
        try:
            for page in pages:
                for entry in page.get("SecretList", []):
                    if entry.get("Name", "").startswith(start):
                        yield SecretMeta.from_api(entry)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "ListSecrets", self.prefix) from None

    # -- writes ------------------------------------------------------------------------------------------------

    def save_installation(self, pair: TokenPair, *, deadline: float) -> StoredPair:
        """Store an install's (or reinstall's) pair as the new current version: a fresh OAuth grant always wins.

        Costs one read (DescribeSecret) and one write (CreateSecret or PutSecretValue); the status tag is
        rewritten only when it changes (a reinstall after ``needs_reinstall``).
        """
        name = self.name_for(pair.key)
        version_id = new_version_id(pair.status, pair.expires_at)
        secret_string = pair.to_secret_string()
        tags = _tags(pair)

        def write() -> None:
            meta = self.describe(name)
            if meta is None:
                if self._create(name, secret_string, version_id, tags):
                    return
                meta = self.describe(name)
            if meta is not None and meta.deleted:
                self._call("RestoreSecret", name, self._client.restore_secret, SecretId=name)
            self._call(
                "PutSecretValue",
                name,
                self._client.put_secret_value,
                SecretId=name,
                SecretString=secret_string,
                ClientRequestToken=version_id,
            )
            if meta is None or meta.tags.get(STATUS_TAG) != pair.status:
                self._call(
                    "TagResource",
                    name,
                    self._client.tag_resource,
                    SecretId=name,
                    Tags=_tag_list(tags),
                )

        self._retrying(write, deadline)
        return StoredPair(name=name, version_id=version_id, pair=pair)

    def create_if_absent(self, pair: TokenPair, *, deadline: float) -> StoredPair | None:
        """Create the pair's secret; ``None`` (and nothing written) when it exists already, whatever it holds."""
        name = self.name_for(pair.key)
        version_id = new_version_id(pair.status, pair.expires_at)
        created = self._retrying(lambda: self._create(name, pair.to_secret_string(), version_id, _tags(pair)), deadline)
        return StoredPair(name=name, version_id=version_id, pair=pair) if created else None

    def _create(self, name: str, secret_string: str, version_id: str, tags: dict[str, str]) -> bool:
        """CreateSecret; ``False`` when another writer created it first (then the caller puts a version)."""
        try:
            self._client.create_secret(
                Name=name,
                SecretString=secret_string,
                ClientRequestToken=version_id,
                Description="Slack token pair managed by slack-token-lifecycle. Do not edit by hand.",
                Tags=_tag_list(tags),
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceExistsException":
                return False
            raise translate(exc, "CreateSecret", name) from None
        except BotoCoreError as exc:
            raise translate(exc, "CreateSecret", name) from None
        return True

    def stage(self, name: str, pair: TokenPair, *, deadline: float) -> str:
        """Store-first: write ``pair`` as a new unpromoted version (``AWSPENDING`` only). Returns its version id.

        The version id is made once, so every retry of the write is idempotent."""
        version_id = new_version_id(pair.status, pair.expires_at)
        request = {
            "SecretId": name,
            "SecretString": pair.to_secret_string(),
            "ClientRequestToken": version_id,
            "VersionStages": [AWSPENDING],
        }
        self._retrying(lambda: self._call("PutSecretValue", name, self._client.put_secret_value, **request), deadline)
        return version_id

    def promote(self, name: str, version_id: str, *, expected_current: str, deadline: float) -> None:
        """Make ``version_id`` current if ``expected_current`` still is (compare-and-swap of ``AWSCURRENT``).

        Raises ``VersionConflictError`` when ``expected_current`` is no longer current (someone else won).
        """

        def move() -> None:
            try:
                self._client.update_secret_version_stage(
                    SecretId=name,
                    VersionStage=AWSCURRENT,
                    MoveToVersionId=version_id,
                    RemoveFromVersionId=expected_current,
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "InvalidParameterException":
                    raise VersionConflictError(
                        f"{name}: AWSCURRENT moved away from the refreshed version", code="InvalidParameterException"
                    ) from None
                raise translate(exc, "UpdateSecretVersionStage", name) from None
            except BotoCoreError as exc:
                raise translate(exc, "UpdateSecretVersionStage", name) from None

        self._retrying(move, deadline)

    def set_status_tag(self, name: str, status: str, *, deadline: float) -> None:
        self._retrying(
            lambda: self._call(
                "TagResource",
                name,
                self._client.tag_resource,
                SecretId=name,
                Tags=_tag_list({STATUS_TAG: status}),
            ),
            deadline,
        )

    def schedule_deletion(self, name: str, *, recovery_days: int, deadline: float) -> None:
        """DeleteSecret with a recovery window: the secret can be restored (a reinstall does) until it ends."""
        self._retrying(
            lambda: self._call(
                "DeleteSecret",
                name,
                self._client.delete_secret,
                SecretId=name,
                RecoveryWindowInDays=recovery_days,
            ),
            deadline,
        )

    # -- plumbing ----------------------------------------------------------------------------------------------

    def _call(self, action: str, name: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, action, name) from None

    def _retrying(self, operation: Callable[[], T], deadline: float) -> T:
        """Repeat ``operation`` on retryable ``StoreError`` with jittered backoff while another attempt, at its
        worst (``write_worst_seconds``), still ends before ``deadline``. The first attempt is always made."""
        attempt = 0
        while True:
            try:
                return operation()
            except StoreError as exc:
                if not exc.retryable:
                    raise
                wait = random.uniform(0, min(2.0, 0.1 * 2**attempt))  # noqa: S311 - jitter
                if self._monotonic() + wait + self._write_worst >= deadline:
                    raise
                attempt += 1
                self._sleep(wait)
