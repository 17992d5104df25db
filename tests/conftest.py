"""Shared fixtures: the local AWS (moto server over HTTP), the fake Slack, and a configured app around them
(``sandbox`` holds the fakes and the app driver; these fixtures give each test its own)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from sandbox.app import CLIENT_ID, CLIENT_SECRET, App, configure
from sandbox.aws import MotoServer
from sandbox.fake_slack import FakeSlack
from sandbox.lambda_runtime import load_handler
from slack_tokens import entrypoints
from slack_tokens.observability import logger as service_logger


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An empty Secrets Manager, and the environment pointing boto3 at it."""
    moto_server.reset()
    for key, value in moto_server.env().items():
        monkeypatch.setenv(key, value)
    return moto_server.client()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as fake:
        yield fake


@pytest.fixture(scope="session")
def handlers() -> dict[str, ModuleType]:
    return {name: load_handler(name) for name in ("install", "oauth_callback", "rotate", "exchange")}


class LogCapture(logging.Handler):
    """Every line the service logger would print, formatted exactly as Powertools prints it."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(service_logger.registered_formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    std_logger = logging.getLogger(service_logger.name)
    std_logger.addHandler(capture)
    try:
        yield capture
    finally:
        std_logger.removeHandler(capture)


@pytest.fixture
def app(aws: Any, slack: FakeSlack, handlers: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    configure(monkeypatch, aws, slack)
    yield App(handlers=handlers, slack=slack, client=aws)
    entrypoints.reset()
