"""``SlackClient`` against the fake Slack over real HTTP: which lost answers are retried, and what the answers parse to.

Timeouts and backoff are shrunk through ``RetryPolicy`` so a lost answer costs 0.3 s, not 10 s.
"""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import urlencode

import pytest
import urllib3

from sandbox.app import CLIENT_ID, CLIENT_SECRET
from sandbox.fake_slack import FakeSlack
from slack_tokens import errors
from slack_tokens.slack_client import ACCESS, EXCHANGE, RetryPolicy, SlackClient, parse_oauth_access

POLICY = RetryPolicy(read_timeout=0.3, connect_timeout=0.3, backoff_base=0.01, backoff_cap=0.05)
CREDENTIALS = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
LOST_ANSWERS = pytest.mark.parametrize(
    "fault",
    [{"drop_after_processing": True}, {"delay": 1.0}],
    ids=["connection closed after processing", "answer later than the read timeout"],
)


@pytest.fixture
def sleeps() -> list[float]:
    """Every pause the client takes between attempts (it still really sleeps)."""
    return []


@pytest.fixture
def client(slack: FakeSlack, sleeps: list[float]) -> SlackClient:
    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    return SlackClient(slack.api_url, policy=POLICY, sleep=sleep)


def within(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bot_refresh_token(slack: FakeSlack, client: SlackClient) -> str:
    code = slack.grant_code(scope="chat:write", user_scope="", redirect_uri=None)
    access = client.exchange_code(**CREDENTIALS, code=code, redirect_uri=None, deadline=within())
    assert access.bot is not None and access.bot.refresh_token is not None
    slack.clear_requests()
    return access.bot.refresh_token


# -- lost answers -------------------------------------------------------------------------------------------------


@LOST_ANSWERS
def test_a_refresh_whose_answer_is_lost_is_retried_at_once_and_returns_a_pair_slack_accepts(
    slack: FakeSlack, client: SlackClient, sleeps: list[float], fault: dict[str, Any]
) -> None:
    old = bot_refresh_token(slack, client)
    slack.fail_next(ACCESS, **fault)

    new = client.refresh(**CREDENTIALS, refresh_token=old, token_type="bot", deadline=within())

    assert slack.is_refresh_token_valid(new.refresh_token) and slack.is_access_token_valid(new.access_token)
    assert new.refresh_token != old and new.token_type == "bot"
    assert slack.refresh_count(old) == 2  # Slack acted on the lost request too; the retry used the grace period
    first, second = slack.requests
    assert first.form["refresh_token"] == second.form["refresh_token"] == old
    assert sleeps == [0.0]  # asked again at once: the grace period is short


@LOST_ANSWERS
def test_an_exchange_whose_answer_is_lost_is_reported_and_not_repeated(
    slack: FakeSlack, client: SlackClient, fault: dict[str, Any]
) -> None:
    legacy = slack.add_legacy_token("bot")
    slack.fail_next(EXCHANGE, **fault)

    with pytest.raises(errors.SlackTransportError) as caught:
        client.exchange_legacy_token(**CREDENTIALS, token=legacy, deadline=within())

    assert caught.value.request_sent is True and caught.value.code == "answer_lost"
    assert [r.method for r in slack.requests] == [EXCHANGE]
    # Why it must not be repeated: Slack did exchange the token, and a second call can only say so.
    with pytest.raises(errors.TokenAlreadyExchangedError):
        client.exchange_legacy_token(**CREDENTIALS, token=legacy, deadline=within())


def test_a_refused_connection_means_the_request_never_left() -> None:
    client = SlackClient(f"http://127.0.0.1:{closed_port()}/api/", policy=POLICY)
    started = time.monotonic()

    with pytest.raises(errors.SlackTransportError) as caught:
        client.exchange_legacy_token(**CREDENTIALS, token="xoxb-legacy", deadline=within())

    assert caught.value.request_sent is False and caught.value.code == "connection_failed"
    assert time.monotonic() - started < 2  # a few quick retries, safe even for the exchange


# -- deadlines and error codes ------------------------------------------------------------------------------------


def test_a_retry_after_beyond_the_deadline_is_not_waited_for(
    slack: FakeSlack, client: SlackClient, sleeps: list[float]
) -> None:
    old = bot_refresh_token(slack, client)
    slack.fail_next(ACCESS, status=429, retry_after=30)
    started = time.monotonic()

    with pytest.raises(errors.SlackRetryableError) as caught:
        client.refresh(**CREDENTIALS, refresh_token=old, token_type="bot", deadline=within(2.0))

    assert time.monotonic() - started < 5 and sleeps == []
    assert caught.value.code == "ratelimited" and caught.value.retry_after == 30
    assert len(slack.requests) == 1
    assert slack.is_refresh_token_valid(old)  # nothing was consumed: the caller can try again later


def test_no_call_is_made_once_the_deadline_has_passed(slack: FakeSlack, client: SlackClient) -> None:
    with pytest.raises(errors.SlackTransportError) as caught:
        client.refresh(**CREDENTIALS, refresh_token="xoxe-1-unused", token_type="bot", deadline=time.monotonic())

    assert caught.value.code == "deadline_exceeded" and caught.value.request_sent is False
    assert slack.requests == []


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ({"error": "something_slack_added_later"}, "something_slack_added_later"),
        ({"status": 418, "body": b"I'm a teapot"}, "http_418"),
    ],
)
def test_an_unknown_answer_is_a_typed_error_and_not_retried(
    slack: FakeSlack, client: SlackClient, fault: dict[str, Any], code: str
) -> None:
    old = bot_refresh_token(slack, client)
    slack.fail_next(ACCESS, **fault)

    with pytest.raises(errors.SlackUnknownError) as caught:
        client.refresh(**CREDENTIALS, refresh_token=old, token_type="bot", deadline=within())

    assert caught.value.code == code and not caught.value.retryable
    assert len(slack.requests) == 1


# -- what the rotator needs: a fence, whole attempts, an answer of the right type ---------------------------------


def test_the_gate_is_asked_before_every_attempt_and_a_closed_gate_sends_nothing(slack: FakeSlack) -> None:
    client = SlackClient(slack.api_url, policy=POLICY)
    old = bot_refresh_token(slack, client)
    slack.fail_next(ACCESS, status=429, retry_after=0)
    answers = iter([True, False])  # the guard holds for the first attempt, is lost before the retry

    with pytest.raises(errors.GuardLostError):
        client.refresh(
            **CREDENTIALS, refresh_token=old, token_type="bot", deadline=within(), gate=lambda: next(answers)
        )

    assert len(slack.requests) == 1  # the rate-limited first attempt; the retry was never sent
    assert slack.is_refresh_token_valid(old) and slack.refresh_count(old) == 0


def test_with_whole_attempts_an_attempt_that_cannot_finish_before_the_deadline_is_not_started(
    slack: FakeSlack,
) -> None:
    whole = POLICY._replace(whole_attempts=True, read_timeout=2.0)  # one attempt: up to 2.3 s
    client = SlackClient(slack.api_url, policy=whole)
    old = bot_refresh_token(slack, client)

    with pytest.raises(errors.SlackTransportError) as caught:
        client.refresh(**CREDENTIALS, refresh_token=old, token_type="bot", deadline=within(2.0))

    assert caught.value.code == "deadline_exceeded" and caught.value.request_sent is False
    assert slack.requests == [] and client.attempt_seconds == pytest.approx(2.3)
    assert client.refresh(**CREDENTIALS, refresh_token=old, token_type="bot", deadline=within(2.5)).refresh_token


def test_a_retry_after_that_fits_before_the_deadline_is_waited_for(
    slack: FakeSlack, client: SlackClient, sleeps: list[float]
) -> None:
    old = bot_refresh_token(slack, client)
    slack.fail_next(ACCESS, status=429, retry_after=1)

    new = client.refresh(**CREDENTIALS, refresh_token=old, token_type="bot", deadline=within(5.0))

    assert sleeps == [1] and slack.refresh_count(old) == 1 and new.refresh_token != old


def test_a_failed_call_says_when_an_earlier_attempt_may_have_been_acted_on(
    slack: FakeSlack, client: SlackClient
) -> None:
    old = bot_refresh_token(slack, client)
    slack.fail_next(ACCESS, drop_after_processing=True)
    slack.fail_next(ACCESS, status=429, retry_after=0, times=3)

    with pytest.raises(errors.SlackRetryableError) as caught:
        client.refresh(**CREDENTIALS, refresh_token=old, token_type="bot", deadline=within())

    assert caught.value.code == "ratelimited" and caught.value.maybe_acted  # the last word is not the whole story
    assert slack.refresh_count(old) == 1


def test_a_rate_limit_with_no_lost_answer_before_it_did_not_act(slack: FakeSlack, client: SlackClient) -> None:
    old = bot_refresh_token(slack, client)
    slack.fail_next(ACCESS, status=429, retry_after=0, times=4)

    with pytest.raises(errors.SlackRetryableError) as caught:
        client.refresh(**CREDENTIALS, refresh_token=old, token_type="bot", deadline=within())

    assert not caught.value.maybe_acted and slack.refresh_count(old) == 0


@pytest.mark.parametrize(
    ("token_type", "rewrite"),
    [
        # python-slack-sdk's own mock server answers a user refresh like this: a bot token on top
        ("user", lambda body: {**body, "token_type": "bot", "authed_user": {"id": "U0001", **body}}),
        ("bot", lambda body: {k: v for k, v in body.items() if k != "refresh_token"}),
        ("bot", lambda body: {k: v for k, v in body.items() if k != "expires_in"}),
        ("bot", lambda body: {**body, "access_token": ""}),
    ],
    ids=["bot token for a user pair", "no refresh token", "no expires_in", "empty access token"],
)
def test_a_refresh_answer_that_is_incomplete_or_of_the_other_type_is_refused(
    slack: FakeSlack, client: SlackClient, token_type: str, rewrite: Any
) -> None:
    old = bot_refresh_token(slack, client)
    slack.fail_next(ACCESS, rewrite=rewrite)

    with pytest.raises(errors.SlackUnknownError) as caught:
        client.refresh(**CREDENTIALS, refresh_token=old, token_type=token_type, deadline=within())  # type: ignore[arg-type]

    assert caught.value.code == "invalid_response" and not caught.value.retryable
    assert slack.refresh_count(old) == 1  # Slack did act: the refresh token is in its grace period


# -- parsing real answers -----------------------------------------------------------------------------------------


def code_exchange_answer(slack: FakeSlack, *, scope: str, user_scope: str) -> dict[str, Any]:
    """The raw JSON the fake answers to a code exchange, fetched without our client."""
    code = slack.grant_code(scope=scope, user_scope=user_scope, redirect_uri=None)
    headers = urllib3.util.make_headers(basic_auth=f"{CLIENT_ID}:{CLIENT_SECRET}")
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    response = urllib3.request(
        "POST",
        slack.api_url + ACCESS,
        body=urlencode({"grant_type": "authorization_code", "code": code}),
        headers=headers,
        timeout=5,
    )
    body = response.json()
    assert body["ok"] is True
    return dict(body)


def test_a_bot_only_answer_parses_to_a_bot_pair(slack: FakeSlack) -> None:
    now = int(time.time())
    body = code_exchange_answer(slack, scope="chat:write,commands", user_scope="")

    access = parse_oauth_access(body, now=now)

    assert access.user is None and access.bot is not None
    bot = access.bot
    assert bot.token_type == "bot" and bot.access_token == body["access_token"]
    assert bot.access_token.startswith("xoxe.xoxb-") and bot.refresh_token == body["refresh_token"]
    assert bot.expires_at == now + 43200 and bot.scope == "chat:write,commands"
    assert (bot.team_id, bot.enterprise_id, bot.app_id, bot.bot_user_id) == ("T0001", None, "A0001", "B0001")
    assert bot.is_enterprise_install is False
    assert (access.team_id, access.enterprise_id) == ("T0001", None)


def test_a_user_only_answer_parses_to_a_user_pair(slack: FakeSlack) -> None:
    body = code_exchange_answer(slack, scope="", user_scope="search:read")

    access = parse_oauth_access(body, now=int(time.time()))

    assert access.bot is None and access.user is not None
    user = access.user
    assert user.token_type == "user" and user.user_id == "U0001" and user.scope == "search:read"
    assert user.access_token == body["authed_user"]["access_token"] and user.access_token.startswith("xoxe.xoxp-")
    assert user.refresh_token == body["authed_user"]["refresh_token"]
    assert user.team_id == "T0001"


def test_an_org_wide_answer_parses_to_pairs_of_the_enterprise(slack: FakeSlack) -> None:
    slack.set_installation(team_id=None, enterprise_id="E0001", enterprise_name="Grid Org", is_enterprise_install=True)
    body = code_exchange_answer(slack, scope="chat:write", user_scope="search:read")

    access = parse_oauth_access(body, now=int(time.time()))

    assert (access.team_id, access.enterprise_id, access.is_enterprise_install) == (None, "E0001", True)
    assert access.bot is not None and access.user is not None
    for pair in access.pairs():
        assert (pair.team_id, pair.enterprise_id, pair.is_enterprise_install) == (None, "E0001", True)
        assert pair.enterprise_name == "Grid Org"
    assert access.user.user_id == "U0001" and access.bot.bot_user_id == "B0001"


@pytest.mark.parametrize("token_type", ["bot", "user"])
def test_an_exchanged_legacy_token_parses_to_a_pair_of_its_type(
    slack: FakeSlack, client: SlackClient, token_type: Any
) -> None:
    legacy = slack.add_legacy_token(token_type, scope="chat:write")

    access = client.exchange_legacy_token(**CREDENTIALS, token=legacy, deadline=within())

    (pair,) = access.pairs()
    assert pair.token_type == token_type
    assert (access.bot is pair) == (token_type == "bot") and (access.user is pair) == (token_type == "user")
    assert pair.access_token.startswith({"bot": "xoxe.xoxb-", "user": "xoxe.xoxp-"}[token_type])
    assert pair.refresh_token is not None and slack.is_refresh_token_valid(pair.refresh_token)
    assert pair.scope == "chat:write" and pair.team_id == "T0001"
    if token_type == "user":
        assert pair.user_id == "U0001"
    else:
        assert pair.bot_user_id == "B0001"
    (request,) = slack.requests
    assert request.form == {"token": legacy}  # the token goes in the body; the credentials in Basic auth
    assert request.basic_auth == (CLIENT_ID, CLIENT_SECRET)


def test_an_exchange_answered_with_a_5xx_is_not_repeated_but_a_rate_limit_is(slack: FakeSlack) -> None:
    client = SlackClient(slack.api_url, policy=RetryPolicy(backoff_base=0.01, backoff_cap=0.05))
    legacy = slack.add_legacy_token("bot")
    slack.fail_next("oauth.v2.exchange", status=502, body=b"<html>bad gateway</html>")

    with pytest.raises(errors.SlackTransportError):
        client.exchange_legacy_token(
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET, token=legacy, deadline=time.monotonic() + 5
        )
    assert sum(r.method == "oauth.v2.exchange" for r in slack.requests) == 1

    slack.fail_next("oauth.v2.exchange", status=429, retry_after=0)
    access = client.exchange_legacy_token(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, token=legacy, deadline=time.monotonic() + 5
    )
    assert access.bot is not None and access.bot.refresh_token


# -- auth.test (the bot's bot_id) -------------------------------------------------------------------------------


class CountingLimiter:
    """A pacer that counts what it is asked for: auth.test must not spend oauth.v2.access's budget."""

    def __init__(self) -> None:
        self.acquired = 0

    def acquire(self, deadline: float) -> bool:
        self.acquired += 1
        return True

    def pause(self, seconds: float) -> None:
        pass


def bot_access_token(slack: FakeSlack, client: SlackClient) -> str:
    code = slack.grant_code(scope="chat:write", user_scope="", redirect_uri=None)
    access = client.exchange_code(**CREDENTIALS, code=code, redirect_uri=None, deadline=within())
    assert access.bot is not None
    slack.clear_requests()
    return access.bot.access_token


def test_bot_id_asks_auth_test_with_the_bot_token_and_is_not_paced(slack: FakeSlack) -> None:
    limiter = CountingLimiter()
    client = SlackClient(slack.api_url, policy=POLICY, limiter=limiter)
    token = bot_access_token(slack, client)
    limiter.acquired = 0

    assert client.bot_id(token=token, deadline=within()) == slack.installation.bot_id

    (request,) = slack.requests
    assert request.method == "auth.test" and request.headers["authorization"] == f"Bearer {token}"
    assert request.basic_auth is None and limiter.acquired == 0


@LOST_ANSWERS
def test_bot_id_asks_again_when_the_answer_is_lost(
    slack: FakeSlack, client: SlackClient, fault: dict[str, Any]
) -> None:
    token = bot_access_token(slack, client)
    slack.fail_next("auth.test", **fault)

    assert client.bot_id(token=token, deadline=within()) == slack.installation.bot_id
    assert len(slack.requests) == 2


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"ok": true, "user_id": "U1"}', "invalid_response"),
        (b'{"ok": false, "error": "invalid_auth"}', "invalid_auth"),
    ],
    ids=["no bot_id", "refused"],
)
def test_bot_id_raises_a_typed_error_for_an_unusable_answer(
    slack: FakeSlack, client: SlackClient, body: bytes, code: str
) -> None:
    token = bot_access_token(slack, client)
    slack.fail_next("auth.test", body=body)

    with pytest.raises(errors.SlackApiError) as caught:
        client.bot_id(token=token, deadline=within())
    assert caught.value.code == code
