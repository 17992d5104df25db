"""The fake Slack behaves like Slack's OAuth v2 endpoints, over real HTTP (urllib3)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from sandbox.fake_slack import FakeSlack

CLIENT_ID = "111.222"
CLIENT_SECRET = "fake-client-secret"
REDIRECT = "https://app.example/slack/oauth_redirect"
USER_KEYS = {"id", "scope", "access_token", "token_type", "expires_in", "refresh_token"}


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def slack(clock: FakeClock) -> Iterator[FakeSlack]:
    fake = FakeSlack(clock=clock, refresh_grace_seconds=60.0).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def http() -> Iterator[urllib3.PoolManager]:
    pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2.0, read=5.0))
    try:
        yield pool
    finally:
        pool.clear()


def call(
    http: urllib3.PoolManager,
    slack: FakeSlack,
    method: str,
    fields: dict[str, str],
    *,
    basic: tuple[str, str] | None = (CLIENT_ID, CLIENT_SECRET),
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> urllib3.BaseHTTPResponse:
    sent = urllib3.make_headers(basic_auth=f"{basic[0]}:{basic[1]}") if basic else {}
    return http.request(
        "POST",
        slack.api_url + method,
        fields=fields,
        encode_multipart=False,
        headers={**sent, **(headers or {})},
        **kwargs,
    )


def api(http: urllib3.PoolManager, slack: FakeSlack, method: str, fields: dict[str, str], **kwargs: Any) -> Any:
    response = call(http, slack, method, fields, **kwargs)
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    return response.json()


def exchange_code(
    http: urllib3.PoolManager,
    slack: FakeSlack,
    *,
    scope: str = "chat:write,commands",
    user_scope: str = "search:read",
    **fields: str,
) -> Any:
    code = slack.grant_code(scope=scope, user_scope=user_scope, redirect_uri=REDIRECT)
    return api(http, slack, "oauth.v2.access", {"code": code, "redirect_uri": REDIRECT, **fields})


def refresh(http: urllib3.PoolManager, slack: FakeSlack, token: str) -> Any:
    return api(http, slack, "oauth.v2.access", {"grant_type": "refresh_token", "refresh_token": token})


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


# ---------------------------------------------------------------------- authorization_code


def test_code_exchange_bot_and_user_has_slacks_shape(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    body = exchange_code(http, slack)

    assert set(body) == {
        "ok",
        "app_id",
        "authed_user",
        "scope",
        "token_type",
        "access_token",
        "bot_user_id",
        "refresh_token",
        "expires_in",
        "team",
        "enterprise",
        "is_enterprise_install",
    }
    assert body["ok"] is True
    assert (body["app_id"], body["bot_user_id"]) == ("A0001", "B0001")
    assert (body["token_type"], body["scope"], body["expires_in"]) == ("bot", "chat:write,commands", 43200)
    assert body["access_token"].startswith("xoxe.xoxb-1-")
    assert len(body["access_token"]) >= len("xoxe.xoxb-1-") + 40
    assert body["refresh_token"].startswith("xoxe-1-")
    assert body["team"] == {"id": "T0001", "name": "Sandbox Workspace"}
    assert body["enterprise"] is None
    assert body["is_enterprise_install"] is False
    user = body["authed_user"]
    assert set(user) == USER_KEYS
    assert (user["id"], user["scope"], user["token_type"], user["expires_in"]) == (
        "U0001",
        "search:read",
        "user",
        43200,
    )
    assert user["access_token"].startswith("xoxe.xoxp-1-")
    assert user["refresh_token"].startswith("xoxe-1-")
    tokens = {body["access_token"], body["refresh_token"], user["access_token"], user["refresh_token"]}
    assert len(tokens) == 4
    assert slack.is_access_token_valid(body["access_token"])
    assert slack.is_access_token_valid(user["access_token"])
    assert slack.is_refresh_token_valid(body["refresh_token"])
    recorded = slack.requests[-1]
    assert recorded.method == "oauth.v2.access"
    assert recorded.basic_auth == (CLIENT_ID, CLIENT_SECRET)
    assert recorded.headers["content-type"] == "application/x-www-form-urlencoded"
    assert recorded.form["redirect_uri"] == REDIRECT
    assert (recorded.status, recorded.error) == (200, None)


def test_bot_only_install_has_no_user_token(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    body = exchange_code(http, slack, user_scope="")

    assert body["authed_user"] == {"id": "U0001"}
    assert body["access_token"].startswith("xoxe.xoxb-1-")


def test_user_only_install_has_no_bot_token(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    body = exchange_code(http, slack, scope="")

    assert set(body) == {"ok", "app_id", "authed_user", "team", "enterprise", "is_enterprise_install"}
    assert set(body["authed_user"]) == USER_KEYS


def test_org_wide_install_has_enterprise_and_no_team(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    slack.set_installation(
        team_id=None, team_name=None, enterprise_id="E0001", enterprise_name="Grid Org", is_enterprise_install=True
    )

    body = exchange_code(http, slack)

    assert body["team"] is None
    assert body["enterprise"] == {"id": "E0001", "name": "Grid Org"}
    assert body["is_enterprise_install"] is True
    test = api(http, slack, "auth.test", {}, basic=None, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert (test["team_id"], test["enterprise_id"], test["is_enterprise_install"]) == ("E0001", "E0001", True)


def test_grid_workspace_install_has_team_and_enterprise(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    slack.set_installation(team_id="T0002", team_name="Grid Team", enterprise_id="E0001", enterprise_name="Grid Org")

    body = exchange_code(http, slack)

    assert body["team"] == {"id": "T0002", "name": "Grid Team"}
    assert body["enterprise"] == {"id": "E0001", "name": "Grid Org"}
    assert body["is_enterprise_install"] is False


def test_set_installation_rejects_impossible_shapes(slack: FakeSlack) -> None:
    with pytest.raises(ValueError, match="org-wide"):
        slack.set_installation(enterprise_id="E0001", is_enterprise_install=True)  # team_id left at T0001
    with pytest.raises(ValueError, match="team_id"):
        slack.set_installation(team_id=None)


def test_incoming_webhook_when_enabled(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    slack.set_installation(incoming_webhook=True)

    body = exchange_code(http, slack)

    assert set(body["incoming_webhook"]) == {"url", "channel", "channel_id", "configuration_url"}


def test_rotation_disabled_mints_legacy_tokens(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    slack.rotation_enabled = False

    body = exchange_code(http, slack)

    assert body["access_token"].startswith("xoxb-")
    assert body["authed_user"]["access_token"].startswith("xoxp-")
    for part in (body, body["authed_user"]):
        assert "refresh_token" not in part
        assert "expires_in" not in part
    assert slack.is_access_token_valid(body["access_token"])


def test_code_is_single_use_and_expires_after_ten_minutes(
    http: urllib3.PoolManager, slack: FakeSlack, clock: FakeClock
) -> None:
    code = slack.grant_code(scope="chat:write", user_scope="", redirect_uri=None)
    assert api(http, slack, "oauth.v2.access", {"code": code})["ok"] is True
    assert api(http, slack, "oauth.v2.access", {"code": code}) == {"ok": False, "error": "invalid_code"}

    stale = slack.grant_code(scope="chat:write", user_scope="", redirect_uri=None)
    clock.advance(600)
    assert api(http, slack, "oauth.v2.access", {"code": stale})["error"] == "invalid_code"
    assert api(http, slack, "oauth.v2.access", {"code": "nope"})["error"] == "invalid_code"
    assert api(http, slack, "oauth.v2.access", {})["error"] == "invalid_code"


def test_redirect_uri_must_match_the_one_sent_to_authorize(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    code = slack.grant_code(scope="chat:write", user_scope="", redirect_uri=REDIRECT)

    for fields in ({"code": code, "redirect_uri": REDIRECT + "/other"}, {"code": code}):
        assert api(http, slack, "oauth.v2.access", fields)["error"] == "bad_redirect_uri"
    # a failed attempt does not burn the code
    assert api(http, slack, "oauth.v2.access", {"code": code, "redirect_uri": REDIRECT})["ok"] is True


def test_pkce_verifier_is_checked(http: urllib3.PoolManager, slack: FakeSlack, clock: FakeClock) -> None:
    verifier = "v" * 20 + "-._~" + "0123456789abcdefghijklmn"
    code = slack.grant_code(scope="chat:write", user_scope="", redirect_uri=None, code_challenge=s256(verifier))

    assert api(http, slack, "oauth.v2.access", {"code": code})["error"] == "invalid_code_verifier"
    wrong = {"code": code, "code_verifier": verifier[::-1]}
    assert api(http, slack, "oauth.v2.access", wrong)["error"] == "invalid_code_verifier"
    # a PKCE (public) client may leave the secret out, but a wrong one is still refused
    public = {"code": code, "code_verifier": verifier, "client_id": CLIENT_ID}
    assert (
        api(http, slack, "oauth.v2.access", {**public, "client_secret": "x"}, basic=None)["error"]
        == "bad_client_secret"
    )
    body = api(http, slack, "oauth.v2.access", public, basic=None)
    assert body["ok"] is True
    assert slack.is_refresh_token_valid(body["refresh_token"])
    clock.advance(30 * 24 * 3600)  # PKCE refresh tokens expire after 30 days
    assert not slack.is_refresh_token_valid(body["refresh_token"])


def test_client_credentials_via_basic_or_body(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    code = slack.grant_code(scope="chat:write", user_scope="", redirect_uri=None)

    assert (
        api(http, slack, "oauth.v2.access", {"code": code}, basic=(CLIENT_ID, "wrong"))["error"] == "bad_client_secret"
    )
    assert (
        api(http, slack, "oauth.v2.access", {"code": code}, basic=("999.999", CLIENT_SECRET))["error"]
        == "invalid_client_id"
    )
    body_creds = {"code": code, "client_id": CLIENT_ID}
    assert (
        api(http, slack, "oauth.v2.access", {**body_creds, "client_secret": "wrong"}, basic=None)["error"]
        == "bad_client_secret"
    )
    assert api(http, slack, "oauth.v2.access", body_creds, basic=None)["error"] == "bad_client_secret"
    garbled = {"Authorization": "Basic !!!"}
    assert (
        api(http, slack, "oauth.v2.access", {"code": code}, basic=None, headers=garbled)["error"] == "invalid_client_id"
    )
    body = api(http, slack, "oauth.v2.access", {**body_creds, "client_secret": CLIENT_SECRET}, basic=None)
    assert body["ok"] is True
    assert slack.requests[-1].basic_auth is None


def test_grant_type_is_inferred_or_refused(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    assert api(http, slack, "oauth.v2.access", {"grant_type": "password"})["error"] == "invalid_grant_type"
    assert api(http, slack, "oauth.v2.access", {"refresh_token": "xoxe-1-unknown"})["error"] == "invalid_refresh_token"


def test_grant_code_needs_a_scope(slack: FakeSlack) -> None:
    with pytest.raises(ValueError, match="no_scopes"):
        slack.grant_code(scope=" ", user_scope="", redirect_uri=None)


# ---------------------------------------------------------------------- refresh_token


def test_refresh_token_is_single_use_with_grace(http: urllib3.PoolManager, slack: FakeSlack, clock: FakeClock) -> None:
    installed = exchange_code(http, slack, user_scope="")
    old = installed["refresh_token"]

    first = refresh(http, slack, old)
    assert set(first) == {
        "ok",
        "app_id",
        "access_token",
        "token_type",
        "scope",
        "expires_in",
        "refresh_token",
        "bot_user_id",
        "team",
        "enterprise",
        "is_enterprise_install",
    }
    assert (first["token_type"], first["scope"], first["expires_in"]) == ("bot", "chat:write,commands", 43200)
    assert first["access_token"].startswith("xoxe.xoxb-1-")
    assert first["refresh_token"] != old
    assert slack.refresh_count(old) == 1
    assert slack.is_access_token_valid(installed["access_token"])  # not revoked by the refresh

    clock.advance(59.9)
    assert slack.is_refresh_token_valid(old)
    again = refresh(http, slack, old)  # inside grace: a fresh, independent pair
    assert again["ok"] is True
    assert again["refresh_token"] not in {old, first["refresh_token"]}
    assert slack.refresh_count(old) == 2

    clock.advance(0.1)  # first use + 60 s: gone
    assert not slack.is_refresh_token_valid(old)
    assert refresh(http, slack, old) == {"ok": False, "error": "invalid_refresh_token"}
    assert slack.refresh_count(old) == 2
    assert slack.is_refresh_token_valid(first["refresh_token"])
    assert slack.is_refresh_token_valid(again["refresh_token"])
    assert refresh(http, slack, "xoxe-1-unknown")["error"] == "invalid_refresh_token"
    assert slack.refresh_count("xoxe-1-unknown") == 0


def test_user_refresh_answers_a_user_token(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    installed = exchange_code(http, slack, scope="")

    body = refresh(http, slack, installed["authed_user"]["refresh_token"])

    assert (body["token_type"], body["scope"]) == ("user", "search:read")
    assert body["access_token"].startswith("xoxe.xoxp-1-")
    assert "bot_user_id" not in body


def test_access_token_expires_at_issue_plus_lifetime(
    http: urllib3.PoolManager, slack: FakeSlack, clock: FakeClock
) -> None:
    token = exchange_code(http, slack)["access_token"]

    clock.advance(43199)
    assert slack.is_access_token_valid(token)
    clock.advance(1)
    assert not slack.is_access_token_valid(token)


def test_revoked_refresh_token_is_refused(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    token = exchange_code(http, slack)["refresh_token"]

    slack.revoke(token)

    assert refresh(http, slack, token)["error"] == "invalid_refresh_token"


def test_concurrent_refreshes_inside_grace_each_get_a_pair(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    token = exchange_code(http, slack)["refresh_token"]
    results: list[Any] = []
    lock = threading.Lock()

    def worker() -> None:
        body = refresh(http, slack, token)
        with lock:
            results.append(body)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(body["ok"] for body in results)
    assert len({body["refresh_token"] for body in results}) == 8
    assert slack.refresh_count(token) == 8


# ---------------------------------------------------------------------- oauth.v2.exchange


def test_exchange_bot_token_and_legacy_token_lives_until_first_refresh(
    http: urllib3.PoolManager, slack: FakeSlack
) -> None:
    legacy = slack.add_legacy_token("bot")
    assert legacy.startswith("xoxb-")

    body = api(http, slack, "oauth.v2.exchange", {"token": legacy})

    assert body["ok"] is True
    assert (body["token_type"], body["bot_user_id"], body["expires_in"]) == ("bot", "B0001", 43200)
    assert body["access_token"].startswith("xoxe.xoxb-1-")
    assert body["refresh_token"].startswith("xoxe-1-")
    assert body["authed_user"] == {"id": "U0001"}
    assert body["team"] == {"id": "T0001", "name": "Sandbox Workspace"}
    assert slack.is_access_token_valid(legacy)
    assert api(http, slack, "oauth.v2.exchange", {"token": legacy})["error"] == "token_already_exchanged"

    refresh(http, slack, body["refresh_token"])

    assert not slack.is_access_token_valid(legacy)
    assert api(http, slack, "auth.test", {"token": legacy})["error"] == "token_revoked"


def test_exchange_user_token_answers_user_on_top(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    legacy = slack.add_legacy_token("user", user_id="U0042", scope="search:read")
    assert legacy.startswith("xoxp-")

    body = api(http, slack, "oauth.v2.exchange", {"token": legacy})

    assert (body["token_type"], body["scope"], body["authed_user"]) == ("user", "search:read", {"id": "U0042"})
    assert body["access_token"].startswith("xoxe.xoxp-1-")
    assert "bot_user_id" not in body


def test_exchange_errors(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    legacy = slack.add_legacy_token("bot")

    assert api(http, slack, "oauth.v2.exchange", {})["error"] == "invalid_arguments"
    assert api(http, slack, "oauth.v2.exchange", {"token": "xoxb-nope"})["error"] == "invalid_token"
    rotating = exchange_code(http, slack)["access_token"]
    assert api(http, slack, "oauth.v2.exchange", {"token": rotating})["error"] == "invalid_token"
    assert (
        api(http, slack, "oauth.v2.exchange", {"token": legacy}, basic=(CLIENT_ID, "x"))["error"] == "bad_client_secret"
    )
    slack.rotation_enabled = False
    assert api(http, slack, "oauth.v2.exchange", {"token": legacy})["error"] == "token_rotation_not_enabled"
    slack.rotation_enabled = True
    assert api(http, slack, "oauth.v2.exchange", {"token": legacy})["ok"] is True


# ---------------------------------------------------------------------- auth.test


def test_auth_test(http: urllib3.PoolManager, slack: FakeSlack, clock: FakeClock) -> None:
    installed = exchange_code(http, slack)
    bearer = {"Authorization": f"Bearer {installed['access_token']}"}

    bot = api(http, slack, "auth.test", {}, basic=None, headers=bearer)
    assert bot == {
        "ok": True,
        "url": "https://sandbox-workspace.slack.com/",
        "team": "Sandbox Workspace",
        "user": "sandbox-bot",
        "team_id": "T0001",
        "user_id": "B0001",
        "bot_id": "BBOT0001",
        "is_enterprise_install": False,
    }
    user = api(http, slack, "auth.test", {"token": installed["authed_user"]["access_token"]}, basic=None)
    assert (user["user_id"], "bot_id" in user) == ("U0001", False)
    assert api(http, slack, "auth.test", {}, basic=None)["error"] == "not_authed"
    assert api(http, slack, "auth.test", {"token": "xoxb-unknown"}, basic=None)["error"] == "invalid_auth"
    clock.advance(43200)
    assert api(http, slack, "auth.test", {}, basic=None, headers=bearer)["error"] == "token_expired"


# ---------------------------------------------------------------------- fault knobs


def test_fault_429_sends_retry_after(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    slack.fail_next("oauth.v2.access", status=429, retry_after=7)
    slack.fail_next("oauth.v2.access", status=429)

    first = call(http, slack, "oauth.v2.access", {})
    second = call(http, slack, "oauth.v2.access", {})

    assert (first.status, first.headers["Retry-After"], first.json()) == (
        429,
        "7",
        {"ok": False, "error": "ratelimited"},
    )
    assert (second.status, second.headers["Retry-After"]) == (429, "1")
    assert call(http, slack, "oauth.v2.access", {}).status == 200  # the queue is used up
    assert [r.status for r in slack.requests] == [429, 429, 200]


def test_fault_500_with_non_json_body(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    slack.fail_next("oauth.v2.access", status=500, body=b"<html>upstream error</html>")

    response = call(http, slack, "oauth.v2.access", {})

    assert response.status == 500
    assert response.data == b"<html>upstream error</html>"
    assert response.headers["Content-Type"].startswith("text/html")


def test_fault_error_code_repeats_times_and_does_not_process(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    token = exchange_code(http, slack)["refresh_token"]
    slack.fail_next("oauth.v2.access", times=2, error="internal_error")

    assert refresh(http, slack, token) == {"ok": False, "error": "internal_error"}
    assert refresh(http, slack, token) == {"ok": False, "error": "internal_error"}
    assert slack.refresh_count(token) == 0
    assert refresh(http, slack, token)["ok"] is True


def test_fault_delay_triggers_a_read_timeout_after_processing(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    token = exchange_code(http, slack)["refresh_token"]
    slack.fail_next("oauth.v2.access", delay=1.0)

    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        call(http, slack, "oauth.v2.access", {"refresh_token": token}, timeout=urllib3.Timeout(connect=1, read=0.2))
    assert time.monotonic() - started < 0.9
    assert slack.refresh_count(token) == 1  # Slack acted before the answer was late


def test_fault_drop_after_processing_consumes_the_refresh_token(
    http: urllib3.PoolManager, slack: FakeSlack, clock: FakeClock
) -> None:
    token = exchange_code(http, slack)["refresh_token"]
    slack.fail_next("oauth.v2.access", drop_after_processing=True)

    with pytest.raises(ProtocolError):
        call(http, slack, "oauth.v2.access", {"grant_type": "refresh_token", "refresh_token": token})

    assert slack.refresh_count(token) == 1
    assert slack.requests[-1].status is None
    assert refresh(http, slack, token)["ok"] is True  # a prompt retry inside the grace period still works
    clock.advance(60)
    assert refresh(http, slack, token)["error"] == "invalid_refresh_token"


def test_fail_next_validates_its_arguments(slack: FakeSlack) -> None:
    with pytest.raises(ValueError, match="unknown API method"):
        slack.fail_next("users.list")
    with pytest.raises(ValueError, match="times"):
        slack.fail_next("auth.test", times=0)


def test_rate_limit_knob(http: urllib3.PoolManager, clock: FakeClock) -> None:
    with FakeSlack(clock=clock, rate_limits={"auth.test": 2}) as slack:
        statuses = [call(http, slack, "auth.test", {}, basic=None).status for _ in range(3)]
        limited = call(http, slack, "auth.test", {}, basic=None)
        clock.advance(60)
        after = call(http, slack, "auth.test", {}, basic=None)

    assert statuses == [200, 200, 429]
    assert limited.headers["Retry-After"] == "60"
    assert after.status == 200


def test_latency_delays_answers(http: urllib3.PoolManager) -> None:
    with FakeSlack(latency=0.1) as slack:
        started = time.monotonic()
        call(http, slack, "auth.test", {}, basic=None)
        assert time.monotonic() - started >= 0.1


# ---------------------------------------------------------------------- HTTP edges


def test_http_edges(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    unknown = call(http, slack, "users.list", {})
    assert (unknown.status, unknown.json()) == (404, {"ok": False, "error": "unknown_method"})
    get = http.request("GET", slack.api_url + "oauth.v2.access")
    assert (get.status, get.headers["Allow"]) == (405, "POST")
    assert http.request("DELETE", slack.api_url + "auth.test").status == 405
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    bad_utf8 = http.request("POST", slack.api_url + "auth.test", body=b"token=%FF%FE", headers=form)
    assert (bad_utf8.status, bad_utf8.json()["error"]) == (200, "invalid_form_data")
    as_json = http.request(
        "POST", slack.api_url + "auth.test", body=b'{"token":"x"}', headers={"Content-Type": "application/json"}
    )
    assert (
        as_json.json()["error"] == "invalid_auth"
    )  # JSON bodies are read (WebClient sends them), token "x" is unknown
    json_type = {"Content-Type": "application/json"}
    assert http.request("POST", slack.api_url + "auth.test", body=b"[1]", headers=json_type).json()["error"] == (
        "json_not_object"
    )
    assert http.request("POST", slack.api_url + "auth.test", body=b"{", headers=json_type).json()["error"] == (
        "invalid_json"
    )
    as_xml = http.request("POST", slack.api_url + "auth.test", body=b"<x/>", headers={"Content-Type": "text/xml"})
    assert as_xml.json()["error"] == "invalid_post_type"
    no_type = http.request("POST", slack.api_url + "auth.test", body=b"token=x")
    assert no_type.json()["error"] == "missing_post_type"
    latin1 = http.request(
        "POST",
        slack.api_url + "auth.test",
        body=b"token=x",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=latin-1"},
    )
    assert latin1.json()["error"] == "invalid_charset"
    too_big = http.request("POST", slack.api_url + "auth.test", body=b"a=" + b"x" * 65536, headers=form)
    assert too_big.status == 413
    assert http.request("GET", slack.base_url + "/").status == 404


def test_server_never_writes_to_stderr(
    http: urllib3.PoolManager, slack: FakeSlack, capfd: pytest.CaptureFixture[str]
) -> None:
    token = exchange_code(http, slack)["refresh_token"]
    refresh(http, slack, token)
    http.request("GET", slack.authorize_url + "?client_id=wrong")
    http.request("BREW", slack.base_url + "/")

    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_start_stop_and_context_manager(http: urllib3.PoolManager) -> None:
    fake = FakeSlack()
    with pytest.raises(RuntimeError, match="not running"):
        _ = fake.base_url
    with fake:
        assert fake.api_url == fake.base_url + "/api/"
        assert fake.authorize_url == fake.base_url + "/oauth/v2/authorize"
        assert fake.base_url.startswith("http://127.0.0.1:")
        url = fake.api_url + "auth.test"
        assert http.request("POST", url).status == 200
        with pytest.raises(RuntimeError, match="already running"):
            fake.start()
    http.clear()
    with pytest.raises(urllib3.exceptions.HTTPError):
        http.request("POST", url)
    fake.stop()  # idempotent


# ---------------------------------------------------------------------- authorize page


def authorize(http: urllib3.PoolManager, slack: FakeSlack, **params: str) -> urllib3.BaseHTTPResponse:
    query = {
        "client_id": CLIENT_ID,
        "scope": "chat:write",
        "user_scope": "search:read",
        "redirect_uri": REDIRECT,
        "state": "s-123",
        **params,
    }
    return http.request("GET", slack.authorize_url, fields=query)


def decide(http: urllib3.PoolManager, slack: FakeSlack, decision: str, **params: str) -> urllib3.BaseHTTPResponse:
    form = {
        "client_id": CLIENT_ID,
        "scope": "chat:write",
        "user_scope": "search:read",
        "redirect_uri": REDIRECT,
        "decision": decision,
        **params,
    }
    form = {k: v for k, v in form.items() if v}
    return http.request(
        "POST", slack.base_url + "/oauth/v2/authorize/decision", fields=form, encode_multipart=False, redirect=False
    )


def location_query(response: urllib3.BaseHTTPResponse) -> dict[str, list[str]]:
    assert response.status == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    return parse_qs(location.query)


def test_consent_page_shows_workspace_scopes_and_buttons(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    page = authorize(http, slack)

    assert page.status == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    text = page.data.decode()
    assert "Sandbox Workspace" in text
    assert "<code>chat:write</code>" in text
    assert "<code>search:read</code>" in text
    assert ">Allow</button>" in text
    assert ">Cancel</button>" in text
    assert 'action="/oauth/v2/authorize/decision"' in text
    assert '<input type="hidden" name="state" value="s-123">' in text


def test_allow_redirects_with_a_code_that_exchanges(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    query = location_query(decide(http, slack, "allow", state="s-123"))

    assert query["state"] == ["s-123"]
    body = api(http, slack, "oauth.v2.access", {"code": query["code"][0], "redirect_uri": REDIRECT})
    assert body["ok"] is True
    assert body["scope"] == "chat:write"
    assert body["authed_user"]["scope"] == "search:read"


def test_allow_without_state_omits_state(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    assert set(location_query(decide(http, slack, "allow"))) == {"code"}


def test_cancel_redirects_with_access_denied(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    query = location_query(decide(http, slack, "cancel", state="s-9"))

    assert query == {"error": ["access_denied"], "state": ["s-9"]}


def test_missing_redirect_uri_uses_the_default_and_exchanges_without_one(
    http: urllib3.PoolManager, slack: FakeSlack
) -> None:
    assert decide(http, slack, "allow", redirect_uri="").status == 400
    slack.default_redirect_uri = REDIRECT

    query = location_query(decide(http, slack, "allow", redirect_uri=""))

    assert api(http, slack, "oauth.v2.access", {"code": query["code"][0]})["ok"] is True


def test_pkce_through_the_consent_page(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    verifier = "k" * 64
    assert authorize(http, slack, code_challenge=s256(verifier), code_challenge_method="plain").status == 400
    assert authorize(http, slack, code_challenge=s256(verifier), code_challenge_method="S256").status == 200

    query = location_query(decide(http, slack, "allow", code_challenge=s256(verifier), code_challenge_method="S256"))

    fields = {"code": query["code"][0], "redirect_uri": REDIRECT}
    assert api(http, slack, "oauth.v2.access", fields)["error"] == "invalid_code_verifier"
    assert api(http, slack, "oauth.v2.access", {**fields, "code_verifier": verifier})["ok"] is True


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"client_id": "999.999"}, "invalid_client_id"),
        ({"scope": "", "user_scope": ""}, "no_scopes"),
        ({"redirect_uri": "javascript:alert(1)"}, "bad_redirect_uri"),
    ],
)
def test_bad_authorize_requests_get_an_error_page(
    http: urllib3.PoolManager, slack: FakeSlack, params: dict[str, str], code: str
) -> None:
    page = authorize(http, slack, **params)

    assert page.status == 400
    assert code in page.data.decode()
    assert decide(http, slack, "allow", **params).status == 400


def test_hostile_values_are_escaped(http: urllib3.PoolManager, slack: FakeSlack) -> None:
    hostile = '<script>alert("x")</script>'
    slack.set_installation(team_name="<b>Evil & Co</b>")

    page = authorize(http, slack, scope=f"chat:write,{hostile}", state='"><img src=x onerror=alert(1)>')

    text = page.data.decode()
    assert "<script>" not in text
    assert "<b>Evil" not in text
    assert "<img" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert "&lt;b&gt;Evil &amp; Co&lt;/b&gt;" in text
    error = authorize(http, slack, client_id=hostile).data.decode()
    assert "<script>" not in error


def test_chat_post_message_needs_a_live_token_and_keeps_the_message(
    http: urllib3.PoolManager, clock: FakeClock
) -> None:
    with FakeSlack(clock=clock, token_lifetime=100) as slack:
        token = slack.add_legacy_token("bot")
        body = json.dumps({"channel": "C1", "text": "hi"}).encode()
        headers = {"Content-Type": "application/json; charset=utf-8"}

        def post(bearer: str | None) -> dict[str, Any]:
            auth = {"Authorization": f"Bearer {bearer}"} if bearer else {}
            answer = http.request("POST", slack.api_url + "chat.postMessage", body=body, headers={**headers, **auth})
            return dict(json.loads(answer.data))

        assert post(None)["error"] == "not_authed"
        assert post("xoxb-unknown")["error"] == "invalid_auth"
        assert post(token)["ok"] is True
        slack.revoke(token)
        assert post(token)["error"] == "token_revoked"

        (kept,) = slack.posts
        assert (kept.channel, kept.text, kept.token, kept.token_type) == ("C1", "hi", token, "bot")
