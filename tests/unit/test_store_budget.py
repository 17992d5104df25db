"""The store publishes the longest one write can take, from its own client's settings: what rotation keeps free
before it asks Slack for a pair that only this process will hold."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config

from slack_tokens.store import TokenStore, make_client, worst_call_seconds


def test_the_functions_client_bounds_one_write_at_nine_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = make_client()

    assert client.meta.config.retries["total_max_attempts"] == 2  # two attempts in all, not two retries
    assert TokenStore(client, "p/").write_worst_seconds == 2 * (1.0 + 3.0) + 1.0


@pytest.mark.parametrize(
    ("retries", "worst"),
    [
        ({"mode": "standard", "total_max_attempts": 1}, 4.0),
        ({"mode": "standard", "total_max_attempts": 3}, 3 * 4.0 + 1 + 2),
        ({"mode": "standard", "max_attempts": 2}, 3 * 4.0 + 1 + 2),  # botocore's max_attempts counts retries only
    ],
)
def test_the_worst_case_counts_every_attempt_and_each_backoff(retries: dict[str, object], worst: float) -> None:
    assert worst_call_seconds(Config(connect_timeout=1.0, read_timeout=3.0, retries=retries)) == worst


def test_a_store_on_another_client_publishes_that_clients_worst_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    slow = boto3.client(
        "secretsmanager", config=Config(connect_timeout=2, read_timeout=10, retries={"total_max_attempts": 2})
    )

    assert TokenStore(slow, "p/").write_worst_seconds == 2 * 12.0 + 1.0
