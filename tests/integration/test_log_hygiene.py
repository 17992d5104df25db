"""No secret reaches a log line, printed output or a callback page, whatever happens during an install.

Each scenario group runs through the real handlers while three channels capture everything: the service logger
(``logs``, formatted as Powertools prints it), every log record reaching the root logger at DEBUG (``caplog``,
including its ``extra`` fields), and the process's stdout and stderr (``capfd``: metrics, prints, anything written
to the file descriptors). Powertools' own stream handler keeps the ``sys.stdout`` of import time, which pytest owns,
so its lines reach us through ``logs`` and ``caplog`` rather than ``capfd``; the last test checks each channel.
The callback pages are scanned too. The scan looks for every secret value the scenarios saw or caused (codes,
states, cookie nonces, stored and attempted tokens, the client secret, the state key) and for anything shaped like
a Slack token.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
from botocore.exceptions import ClientError

from sandbox.app import CLIENT_ID, CLIENT_SECRET, STATE_KEY, App
from sandbox.aws_faults import throttled_create_secret
from slack_tokens import entrypoints
from slack_tokens.observability import logger as service_logger
from slack_tokens.state import COOKIE_NAME, StateSigner
from tests.conftest import LogCapture

ACCESS = "oauth.v2.access"
TOKEN_SHAPE = re.compile(r"xox[a-z]?[.-]")  # xoxb-, xoxp-, xoxe-, xoxe.xoxb-...: every Slack token starts so


def leaks(texts: Iterable[tuple[str, str]], secrets: Mapping[str, str]) -> list[str]:
    """Where each secret value (named by ``secrets[value]``) or token-shaped string occurs; never the value itself."""
    found: list[str] = []
    for where, text in texts:
        found += [f"{what} in {where}" for value, what in secrets.items() if value in text]
        if TOKEN_SHAPE.search(text):
            found.append(f"a token-shaped string in {where}")
    return found


# -- the app, remembering every secret it sees --------------------------------------------------------------------


@dataclass
class RecordingApp(App):
    """``App`` that remembers every secret value the scenarios see, and every callback response."""

    secrets: dict[str, str] = field(default_factory=dict)
    responses: list[dict[str, Any]] = field(default_factory=list)

    def remember(self, value: str | None, what: str) -> None:
        if value:
            self.secrets[value] = what

    def install(self, query: dict[str, str] | None = None) -> dict[str, Any]:
        response = super().install(query)
        state = parse_qs(urlsplit(response["headers"]["Location"]).query)["state"][0]
        self.remember(state, "a state value")
        self.remember(self.browser.cookies[COOKIE_NAME], "a cookie nonce")
        return response

    def authorize(self, install_response: dict[str, Any]) -> dict[str, str]:
        query = super().authorize(install_response)
        self.remember(query["code"], "an authorization code")
        return query

    def callback(
        self, query: dict[str, str] | str, *, cookies: list[str] | None = None, timeout: float = 29.0
    ) -> dict[str, Any]:
        response = super().callback(query, cookies=cookies, timeout=timeout)
        self.responses.append(response)
        self.collect()
        return response

    def collect(self) -> None:
        """Remember the tokens now stored, and every code/token Slack was sent."""
        for name in self.secret_names():
            pair = self.stored(name)
            self.remember(pair["access_token"], f"the access token of {name}")
            self.remember(pair["refresh_token"], f"the refresh token of {name}")
            self.remember((pair.get("incoming_webhook") or {}).get("url"), f"the webhook URL of {name}")
        for request in self.slack.requests:
            for key in ("code", "refresh_token", "token", "code_verifier"):
                self.remember(request.form.get(key), f"a {key} sent to Slack")


@dataclass
class Captured:
    app: RecordingApp
    logs: LogCapture
    caplog: pytest.LogCaptureFixture
    capfd: pytest.CaptureFixture[str]

    def texts(self) -> list[tuple[str, str]]:
        printed = self.capfd.readouterr()
        texts = [("the service log", line) for line in self.logs.lines]
        texts += [(f"the {r.levelname} record of {r.name}", _record_text(r)) for r in self.caplog.records]
        texts += [("stdout", printed.out), ("stderr", printed.err)]
        texts += [("a callback response", json.dumps(r)) for r in self.app.responses]
        return texts

    def secrets(self) -> dict[str, str]:
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        fixed = {CLIENT_SECRET: "the client secret", STATE_KEY: "the state key", basic: "the Basic credentials"}
        return {**self.app.secrets, **fixed}


def _record_text(record: logging.LogRecord) -> str:
    text = f"{record.getMessage()} {vars(record)!r}"
    if record.exc_info:
        text += logging.Formatter().formatException(record.exc_info)
    return text


@pytest.fixture
def captured(
    app: App,
    logs: LogCapture,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Captured:
    """Bot and user scopes (so both token types are minted), and every channel capturing at DEBUG."""
    monkeypatch.setenv("SLACK_USER_SCOPES", "search:read")
    entrypoints.reset()
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=service_logger.name)
    capfd.readouterr()
    return Captured(RecordingApp(handlers=app.handlers, slack=app.slack, client=app.client), logs, caplog, capfd)


# -- scenarios: each checks it did what it claims, so a clean scan is not a vacuous one ----------------------------


def happy_installs(app: RecordingApp) -> None:
    assert app.full_install()["statusCode"] == 200
    app.slack.set_installation(
        team_id=None,
        enterprise_id="E0001",
        enterprise_name="Grid Org",
        is_enterprise_install=True,
        incoming_webhook=True,
    )
    assert app.full_install()["statusCode"] == 200
    assert len(app.secret_names()) == 4


def rejections(app: RecordingApp) -> None:
    genuine = app.authorize(app.install())
    code, state = genuine["code"], genuine["state"]
    cookie = [f"{COOKIE_NAME}={app.browser.cookies[COOKIE_NAME]}"]
    other = app.authorize(app.install())  # a second browser's install
    other_cookie = [f"{COOKIE_NAME}={app.browser.cookies[COOKIE_NAME]}"]
    old = StateSigner(STATE_KEY).issue(int(time.time()) - 700, pkce=False)
    app.remember(old.state, "an expired state value")
    app.remember(old.nonce, "an expired cookie nonce")
    cases: list[tuple[dict[str, str] | str, list[str], int]] = [
        ({"code": code}, cookie, 400),
        (genuine, [], 400),
        ({"code": code, "state": state[:-1] + ("A" if state[-1] != "A" else "B")}, cookie, 401),
        (genuine, other_cookie, 401),
        ({"code": other["code"], "state": old.state}, [f"{COOKIE_NAME}={old.nonce}"], 400),
        ({"state": state}, cookie, 400),
        ({"code": code + "<x>", "state": state}, cookie, 400),
        ({"code": code + "\n", "state": state}, cookie, 400),
        (f"code={code}&state={quote(state)}&code={code}", cookie, 400),
        (f"code=%FF{code}&state={quote(state)}", cookie, 400),
        (urlencode({**genuine, "padding": "x" * 10240}), cookie, 400),
        ({"error": "access_denied", "state": state}, cookie, 200),
        ({"error": "<script>alert(1)</script>", "state": state}, cookie, 400),
    ]
    for query, cookies, status in cases:
        assert app.callback(query, cookies=cookies)["statusCode"] == status
    assert app.slack.requests == [] and app.secret_names() == []
    assert app.callback(genuine, cookies=cookie)["statusCode"] == 200
    assert app.callback(genuine, cookies=cookie)["statusCode"] == 400  # replayed: the state is spent


def slack_failures(app: RecordingApp) -> None:
    faults: list[tuple[dict[str, Any], int]] = [
        ({"error": "invalid_code"}, 400),
        ({"error": "bad_client_secret"}, 500),
        ({"error": "cannot_install_an_org_installed_app"}, 403),
        ({"error": "something_new_at_slack"}, 502),
        ({"status": 400, "body": b'{"ok":false,"error":"invalid_code"}'}, 400),
        ({"status": 429, "retry_after": 30}, 503),
        ({"status": 500}, 200),
        ({"status": 500, "times": 2}, 503),
        ({"status": 502, "body": b"<html>502 Bad Gateway</html>"}, 200),
        ({"drop_after_processing": True}, 400),  # Slack minted tokens whose answer was lost
    ]
    for fault, status in faults:
        app.slack.fail_next(ACCESS, **fault)
        assert app.full_install()["statusCode"] == status


def storage_failure(app: RecordingApp) -> None:
    install = app.authorize(app.install())
    with throttled_create_secret(entrypoints.secretsmanager_client(), refusals=None) as hook:
        assert app.callback(install, timeout=16)["statusCode"] == 500
    assert app.secret_names() == []
    tokens = hook.tokens()
    assert len(tokens) == 4  # both pairs were tried (one failing does not stop the other), and both failed
    for token in tokens:
        app.remember(token, "a token that could not be stored")


def hardening_refusals(app: RecordingApp) -> None:
    """The refusals of issue 8: a spent state, planted cookies, a stateless workspace install, the spent-state table
    out of reach."""
    genuine = app.authorize(app.install())
    cookie = [f"{COOKIE_NAME}={app.browser.cookies[COOKIE_NAME]}"]
    assert app.callback(genuine, cookies=cookie)["statusCode"] == 200
    assert app.callback(genuine, cookies=cookie)["statusCode"] == 400  # state_used
    other = app.authorize(app.install())
    planted = [f"{COOKIE_NAME}=\udc80\udc81", f"{COOKIE_NAME}={'x' * 43}"]
    assert app.callback(other, cookies=planted)["statusCode"] == 401  # cookie_mismatch
    assert (
        app.callback(other, cookies=[*planted, f"{COOKIE_NAME}={app.browser.cookies[COOKIE_NAME]}"])["statusCode"]
        == 200
    )
    unreachable = app.authorize(app.install())

    def refuse_put(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "PutItem")

    events = entrypoints.dynamodb_client().meta.events
    events.register("before-call.dynamodb.PutItem", refuse_put)
    try:
        assert app.callback(unreachable)["statusCode"] == 503
    finally:
        events.unregister("before-call.dynamodb.PutItem", refuse_put)
    os.environ["SLACK_ALLOW_STATELESS_ORG_INSTALL"] = "true"
    entrypoints.reset()
    try:
        code = app.slack.grant_code(scope="chat:write", user_scope="", redirect_uri=None)
        app.remember(code, "an authorization code")
        assert app.callback({"code": code}, cookies=[])["statusCode"] == 400  # stateless_not_org
    finally:
        os.environ["SLACK_ALLOW_STATELESS_ORG_INSTALL"] = "false"
        entrypoints.reset()


SCENARIOS: dict[str, Callable[[RecordingApp], None]] = {
    "bot and user installs": happy_installs,
    "every rejection": rejections,
    "Slack failures": slack_failures,
    "storage failure": storage_failure,
    "hardening refusals": hardening_refusals,
}


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_no_secret_is_logged_printed_or_shown(captured: Captured, scenario: Callable[[RecordingApp], None]) -> None:
    scenario(captured.app)

    texts = captured.texts()

    assert captured.secrets(), "the scenario saw no secret: the scan would prove nothing"
    assert any(where == "the service log" for where, _ in texts), "the scenario logged nothing: nothing was tested"
    assert leaks(texts, captured.secrets()) == []


# -- the scan can fail ---------------------------------------------------------------------------------------------


def test_the_scanner_finds_a_planted_secret_and_any_token_shape() -> None:
    planted = "0123456789012.0123456789012." + "ab" * 32
    sample = json.dumps({"message": "exchanging", "code": planted})

    assert leaks([("the sample", sample)], {planted: "an authorization code"}) == [
        "an authorization code in the sample"
    ]
    assert leaks([("the sample", '{"token": "xoxe.xoxb-1-abc"}')], {}) == ["a token-shaped string in the sample"]
    assert leaks([("the sample", "refreshed slack/tokens/team/T0001/bot")], {planted: "a code"}) == []


def test_every_channel_is_really_captured(captured: Captured) -> None:
    canaries = {f"canary-{channel}-{os.getpid()}": channel for channel in ("service", "root", "print", "fd")}
    by_channel = {channel: value for value, channel in canaries.items()}
    service_logger.info("a line", extra={"detail": by_channel["service"]})
    logging.getLogger("some.library").debug("a debug line %s", by_channel["root"])
    print(by_channel["print"])  # what a stray print would leak
    os.write(2, by_channel["fd"].encode() + b"\n")

    found = leaks(captured.texts(), canaries)

    assert sorted(found) == [
        "fd in stderr",
        "print in stdout",
        "root in the DEBUG record of some.library",
        "service in the INFO record of slack-token-lifecycle",
        "service in the service log",
    ]
