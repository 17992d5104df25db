"""The local Secrets Manager: moto's server on 127.0.0.1, reached over real HTTP through ``AWS_ENDPOINT_URL``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import boto3
import urllib3
from moto.secretsmanager.models import SecretsManagerBackend
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def _move_current_like_aws() -> None:
    """Correct one moto deviation from Secrets Manager (moto 5.2): after ``UpdateSecretVersionStage`` moves
    AWSCURRENT, moto keeps its idea of the current version on the old one, so a later plain ``PutSecretValue``
    (what a reinstall does) leaves TWO versions labelled AWSCURRENT and reads return the stale one. On AWS the
    label moves to the new version. Rotation promotes by UpdateSecretVersionStage, so a reinstall after a rotation
    would look lost under moto alone. The emulator runs in this process, so the fix is applied to its backend.
    """
    original = SecretsManagerBackend.update_secret_version_stage
    if getattr(original, "moves_current_like_aws", False):
        return

    def update_secret_version_stage(
        self: Any, secret_id: str, version_stage: str, remove_from_version_id: str, move_to_version_id: str
    ) -> tuple[str, str]:
        result = original(self, secret_id, version_stage, remove_from_version_id, move_to_version_id)
        if version_stage == "AWSCURRENT" and move_to_version_id:
            self.secrets[secret_id].default_version_id = move_to_version_id
        return result

    update_secret_version_stage.moves_current_like_aws = True  # type: ignore[attr-defined]
    SecretsManagerBackend.update_secret_version_stage = update_secret_version_stage  # type: ignore[method-assign]


class MotoServer:
    """One moto server per test session; ``reset()`` empties it between tests."""

    def __init__(self) -> None:
        _move_current_like_aws()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""

    def start(self) -> MotoServer:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        urllib3.request("POST", f"{self.url}/moto-api/reset", timeout=5)

    def env(self) -> dict[str, str]:
        return endpoint_env(self.url)

    def client(self) -> Any:
        return secretsmanager_client(self.url)

    def dynamodb(self) -> Any:
        return dynamodb_client(self.url)


def endpoint_env(url: str) -> dict[str, str]:
    """The environment that points boto3 at the moto server at ``url``, with its fake credentials."""
    return {"AWS_ENDPOINT_URL": url, **FAKE_CREDENTIALS}


def secretsmanager_client(url: str) -> Any:
    """A Secrets Manager client on the moto server at ``url``."""
    return _client("secretsmanager", url)


def dynamodb_client(url: str) -> Any:
    """A DynamoDB client on the moto server at ``url``."""
    return _client("dynamodb", url)


def _client(service: str, url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def create_table(client: Any, name: str, properties: Mapping[str, Any]) -> str:
    """Create the DynamoDB table an ``AWS::DynamoDB::Table``'s (resolved) properties describe, named ``name``, as
    CloudFormation would; returns its name (what ``Ref`` of the table means)."""
    client.create_table(
        TableName=name,
        AttributeDefinitions=list(properties["AttributeDefinitions"]),
        KeySchema=list(properties["KeySchema"]),
        BillingMode=str(properties.get("BillingMode", "PAY_PER_REQUEST")),
    )
    ttl = properties.get("TimeToLiveSpecification")
    if ttl:
        client.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": bool(ttl["Enabled"])},
        )
    return name
