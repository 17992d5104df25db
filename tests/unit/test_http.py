"""API Gateway v2 request parsing: strict about anything ambiguous."""

from __future__ import annotations

import pytest

from sandbox.lambda_runtime import http_event, load_event
from slack_tokens import http


def test_sample_event_parses() -> None:
    request = http.Request.from_event(load_event("oauth_callback.json"))

    assert request.method == "GET" and request.path == "/slack/oauth_redirect"
    assert request.query == {"code": "1234567890.0987654321.abcdef", "state": "STATE_FROM_INSTALL"}
    assert request.cookies == {"__Host-slack_oauth_state": "NONCE_FROM_INSTALL_COOKIE"}
    assert request.host == "abc123.execute-api.us-east-1.amazonaws.com"


def test_cookie_header_is_read_when_there_is_no_cookie_list() -> None:
    event = http_event("/slack/oauth_redirect", {"code": "c"})
    event["headers"]["Cookie"] = "a=1; slack_oauth_state=xyz ; b=2"

    assert http.Request.from_event(event).cookies["slack_oauth_state"] == "xyz"


@pytest.mark.parametrize(
    "raw", ["code=a&code=b", "state=%FF%FE", "x=" + "a" * 9000, "&".join(f"k{i}=v" for i in range(60))]
)
def test_ambiguous_or_hostile_query_strings_are_refused(raw: str) -> None:
    with pytest.raises(http.BadRequestError):
        http.parse_query(raw)


@pytest.mark.parametrize("event", [None, [], "text", {"rawQueryString": 5}])
def test_non_events_are_refused(event: object) -> None:
    with pytest.raises(http.BadRequestError):
        http.Request.from_event(event)  # type: ignore[arg-type]


def test_hosts_that_are_not_hostnames_are_dropped() -> None:
    event = http_event("/slack/install", host="evil.example/<script>")
    assert http.Request.from_event(event).host is None


def test_responses_carry_security_headers_and_cookies() -> None:
    api = http.redirect("https://slack.example/authorize?x=1", cookies=["a=b"]).to_api()

    assert api["statusCode"] == 302 and api["cookies"] == ["a=b"]
    assert api["headers"]["Referrer-Policy"] == "no-referrer"
    assert api["headers"]["Cache-Control"] == "no-store"
    assert http.set_cookie("n", "v", max_age=600) == "n=v; Max-Age=600; Path=/; Secure; HttpOnly; SameSite=Lax"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://good.example/welcome", "https://good.example/welcome?team=T1"),
        ("https://good.example/welcome?a=1", "https://good.example/welcome?a=1&team=T1"),
        ("https://good.example/welcome#hello", "https://good.example/welcome?team=T1#hello"),
        ("https://good.example/w?a=1#x?y", "https://good.example/w?a=1&team=T1#x?y"),
    ],
)
def test_with_query_adds_the_query_before_any_fragment(url: str, expected: str) -> None:
    assert http.with_query(url, {"team": "T1"}) == expected


def test_every_cookie_of_a_name_is_kept_in_order() -> None:
    event = http_event("/slack/oauth_redirect", {"code": "c"}, cookies=["n=planted", "a=1", "n=genuine"])

    request = http.Request.from_event(event)

    assert request.cookie_values("n") == ["planted", "genuine"]
    assert request.cookies["n"] == "planted"
