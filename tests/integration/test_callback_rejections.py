"""Bad callbacks: a 4xx page, no call to Slack, nothing written to Secrets Manager.

A callback that is malformed, or that cannot prove it finishes an install this browser started, is refused by the
ordered checks of ``slack_tokens.oauth_flow`` before the code is exchanged. Statuses and outcome names (read from
the ``reason`` of the handler's metric) are the ones its docstring lists.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sandbox.app import STATE_KEY, App
from slack_tokens.state import COOKIE_NAME, StateSigner
from tests.support.observed import callback_outcomes

INSTALL_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/slack/install"
CONFIG_SECRETS = ["slack-app/credentials", "slack-app/state-key"]
BOT_SECRET = "slack/tokens/team/T0001/bot"


@dataclass(frozen=True)
class Started:
    """An install this browser started and the user approved: what Slack sends back, and the browser's cookie."""

    code: str
    state: str
    nonce: str

    @property
    def cookie(self) -> str:
        return f"{COOKIE_NAME}={self.nonce}"


def start(app: App) -> Started:
    query = app.authorize(app.install())
    return Started(code=query["code"], state=query["state"], nonce=app.browser.cookies[COOKIE_NAME])


def every_secret(app: App) -> dict[str, dict[str, list[str]]]:
    """Every secret in the account (not only under the token prefix), with its versions and their stages."""
    found: dict[str, dict[str, list[str]]] = {}
    for page in app.client.get_paginator("list_secrets").paginate():
        for entry in page["SecretList"]:
            versions = entry.get("SecretVersionsToStages", {})
            found[entry["Name"]] = {version: sorted(stages) for version, stages in versions.items()}
    return found


def current_version(secrets: dict[str, dict[str, list[str]]], name: str) -> str | None:
    return next((v for v, stages in secrets.get(name, {}).items() if "AWSCURRENT" in stages), None)


# Outcomes of a callback whose state matched the browser's cookie: its pending install is over, the cookie goes.
# Every other refusal proved nothing and leaves the browser's cookie alone (anyone can send any callback).
VERIFIED_OUTCOMES = {"missing_code", "cancelled", "slack_error", "state_used"}


def assert_refused(
    app: App, response: dict[str, Any], capsys: pytest.CaptureFixture[str], *, status: int, outcome: str
) -> None:
    assert response["statusCode"] == status
    assert response["headers"]["Content-Type"] == "text/html; charset=utf-8"
    cleared = [c for c in response["cookies"] if c.startswith(f"{COOKIE_NAME}=;") and "Max-Age=0" in c]
    if outcome in VERIFIED_OUTCOMES:
        assert cleared
    else:
        assert response["cookies"] == []  # the pending install's cookie is left as it was
    assert callback_outcomes(capsys.readouterr().out) == [outcome]
    assert app.slack.requests == []  # Slack was never asked
    assert app.secret_names() == []
    assert sorted(every_secret(app)) == CONFIG_SECRETS  # no token secret anywhere, under the prefix or not


# -- malformed query strings and unusable codes ------------------------------------------------------------------

QueryFor = Callable[[Started], str]

MALFORMED: dict[str, tuple[QueryFor, int, str]] = {
    "missing state": (lambda s: urlencode({"code": s.code}), 400, "missing_state"),
    "empty state": (lambda s: urlencode({"code": s.code, "state": ""}), 400, "missing_state"),
    "missing code": (lambda s: urlencode({"state": s.state}), 400, "missing_code"),
    "empty code": (lambda s: urlencode({"code": "", "state": s.state}), 400, "missing_code"),
    "code with markup": (lambda s: urlencode({"code": "<script>", "state": s.state}), 400, "missing_code"),
    "code with a space": (lambda s: urlencode({"code": s.code + " x", "state": s.state}), 400, "missing_code"),
    "code with a newline": (lambda s: urlencode({"code": s.code + "\n", "state": s.state}), 400, "missing_code"),
    "non-ASCII code": (lambda s: urlencode({"code": s.code + "é", "state": s.state}), 400, "missing_code"),
    "overlong code": (lambda s: urlencode({"code": "1" * 257, "state": s.state}), 400, "missing_code"),
    "duplicated code": (
        lambda s: f"code={s.code}&state={quote(s.state)}&code={s.code}",
        400,
        "bad_request",
    ),
    "duplicated state": (
        lambda s: f"state={quote(s.state)}&code={s.code}&state={quote(s.state)}",
        400,
        "bad_request",
    ),
    "non-UTF-8 percent-encoding": (lambda s: f"code=%FF&state={quote(s.state)}", 400, "bad_request"),
    "non-UTF-8 parameter name": (lambda s: f"code={s.code}&state={quote(s.state)}&%FE=1", 400, "bad_request"),
    "10 kB query string": (
        lambda s: f"code={s.code}&state={quote(s.state)}&padding={'x' * 10240}",
        400,
        "bad_request",
    ),
    "too many parameters": (
        lambda s: f"code={s.code}&state={quote(s.state)}&" + "&".join(f"p{i}=1" for i in range(60)),
        400,
        "bad_request",
    ),
}


@pytest.mark.parametrize(("query_for", "status", "outcome"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_callback_is_refused_before_slack_is_called(
    app: App, capsys: pytest.CaptureFixture[str], query_for: QueryFor, status: int, outcome: str
) -> None:
    started = start(app)

    response = app.callback(query_for(started))

    assert_refused(app, response, capsys, status=status, outcome=outcome)


# -- the browser cannot prove it started this install -------------------------------------------------------------


def test_a_callback_without_the_cookie_is_refused(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    started = start(app)

    response = app.callback({"code": started.code, "state": started.state}, cookies=[])

    assert_refused(app, response, capsys, status=400, outcome="missing_cookie")
    assert INSTALL_URL in response["body"]  # the page offers to start again


def test_an_empty_cookie_counts_as_missing(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    started = start(app)

    response = app.callback({"code": started.code, "state": started.state}, cookies=[f"{COOKIE_NAME}="])

    assert_refused(app, response, capsys, status=400, outcome="missing_cookie")


def _flip_last(text: str) -> str:
    return text[:-1] + ("A" if text[-1] != "A" else "B")


TAMPERINGS: dict[str, Callable[[str], str]] = {
    "signature changed": _flip_last,
    "timestamp moved": lambda s: f"{int(s.split('.')[0]) + 1}.{s.split('.', 1)[1]}",
    "digest changed": lambda s: ".".join([s.split(".")[0], _flip_last(s.split(".")[1]), s.split(".")[2]]),
    "signature dropped": lambda s: s.rsplit(".", 1)[0],
    "extra part": lambda s: s + ".x",
    "non-numeric timestamp": lambda s: "x" + s,
    "non-ASCII": lambda s: s + "é",
    "overlong": lambda s: s + "A" * 200,
}


@pytest.mark.parametrize("tamper", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_a_tampered_state_is_refused(
    app: App, capsys: pytest.CaptureFixture[str], tamper: Callable[[str], str]
) -> None:
    started = start(app)

    response = app.callback({"code": started.code, "state": tamper(started.state)})

    assert_refused(app, response, capsys, status=401, outcome="invalid_state")


def test_a_state_issued_to_another_browser_is_refused(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    victim = start(app)  # the state an attacker lures someone else into finishing...
    attacker = start(app)  # ...while the browser holds the cookie of a second install
    assert attacker.nonce != victim.nonce

    response = app.callback({"code": victim.code, "state": victim.state}, cookies=[attacker.cookie])

    assert_refused(app, response, capsys, status=401, outcome="cookie_mismatch")


@pytest.mark.parametrize(("age", "label"), [(700, "issued 11+ minutes ago"), (-120, "issued 2 minutes ahead")])
def test_a_state_outside_its_lifetime_is_refused(
    app: App, capsys: pytest.CaptureFixture[str], age: int, label: str
) -> None:
    started = start(app)
    old = StateSigner(STATE_KEY).issue(int(time.time()) - age, pkce=False)  # genuinely signed, wrong time

    response = app.callback({"code": started.code, "state": old.state}, cookies=[f"{COOKIE_NAME}={old.nonce}"])

    assert_refused(app, response, capsys, status=400, outcome="expired_state")
    assert "expired" in response["body"], label


# -- Slack sent an error instead of a code ------------------------------------------------------------------------


def test_cancel_gives_a_friendly_page_and_changes_nothing(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    started = start(app)

    response = app.callback({"error": "access_denied", "state": started.state})

    assert_refused(app, response, capsys, status=200, outcome="cancelled")
    assert "Install cancelled" in response["body"]
    assert f'href="{INSTALL_URL}"' in response["body"]


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        ("invalid_scope", "Slack reported: invalid_scope."),
        ("<script>alert(1)</script>", "Slack reported: unknown."),
        ('"><img src=x onerror=alert(1)>', "Slack reported: unknown."),
        ("", "Slack reported: unknown."),
        ("invalid_scope\n", "Slack reported: unknown."),
    ],
)
def test_another_slack_error_gives_a_400_page_that_never_echoes_markup(
    app: App, capsys: pytest.CaptureFixture[str], error: str, shown: str
) -> None:
    started = start(app)

    response = app.callback({"error": error, "state": started.state})

    assert_refused(app, response, capsys, status=400, outcome="slack_error")
    assert shown in response["body"]
    assert "<script" not in response["body"] and "<img" not in response["body"]


# -- replay -------------------------------------------------------------------------------------------------------


def test_a_replayed_callback_is_refused_without_calling_slack_and_stores_nothing_new(
    app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    started = start(app)
    query = {"code": started.code, "state": started.state}
    assert app.callback(query)["statusCode"] == 200
    stored, versions = app.stored(BOT_SECRET), every_secret(app)
    capsys.readouterr()

    # The very same request again, cookie included (a reload from history, or a captured request). The state is
    # still within its lifetime, but it was spent: Slack is not asked again.
    replay = app.callback(query, cookies=[started.cookie])

    assert replay["statusCode"] == 400
    assert "Install link already used" in replay["body"]
    assert f'href="{INSTALL_URL}"' in replay["body"]  # the page offers to start again
    assert callback_outcomes(capsys.readouterr().out) == ["state_used"]
    assert [r.error for r in app.slack.requests if r.method == "oauth.v2.access"] == [None]
    assert every_secret(app) == versions  # no new secret, no new version
    assert app.stored(BOT_SECRET) == stored


def test_a_state_is_spent_by_reaching_slack_even_when_the_code_was_bad(
    app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    """One install link, many made-up codes: only the first reaches Slack (the flood of issue 8 was 620 of them)."""
    started = start(app)
    made_up = ["1234567890123.1234567890123." + f"{i:02d}" * 32 for i in range(5)]

    responses = [app.callback({"code": code, "state": started.state}, cookies=[started.cookie]) for code in made_up]

    assert [r["statusCode"] for r in responses] == [400] * 5
    assert callback_outcomes(capsys.readouterr().out) == ["invalid_code"] + ["state_used"] * 4
    assert [r.error for r in app.slack.requests if r.method == "oauth.v2.access"] == ["invalid_code"]
    assert app.secret_names() == []


def test_two_callbacks_racing_with_one_state_reach_slack_once(app: App) -> None:
    started = start(app)
    query = {"code": started.code, "state": started.state}

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(pool.map(lambda _: app.callback(query, cookies=[started.cookie])["statusCode"], range(4)))

    assert statuses == [200, 400, 400, 400]
    assert len([r for r in app.slack.requests if r.method == "oauth.v2.access"]) == 1


def test_a_replay_from_the_same_browser_is_refused_without_calling_slack(
    app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    started = start(app)
    query = {"code": started.code, "state": started.state}
    assert app.callback(query)["statusCode"] == 200  # the success page cleared the cookie
    versions = every_secret(app)
    capsys.readouterr()

    replay = app.callback(query)

    assert replay["statusCode"] == 400
    assert callback_outcomes(capsys.readouterr().out) == ["missing_cookie"]
    assert [r.method for r in app.slack.requests] == ["oauth.v2.access", "auth.test"]  # the install's, no more
    assert every_secret(app) == versions


# -- properties ---------------------------------------------------------------------------------------------------


class _Genuine:
    """Stands for the genuine value of a fresh install in a generated callback."""

    def __repr__(self) -> str:
        return "GENUINE"


GENUINE = _Genuine()
Part = _Genuine | str | None  # genuine, arbitrary text, or absent

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def parts(max_size: int) -> st.SearchStrategy[Part]:
    return st.one_of(st.just(GENUINE), st.none(), st.text(max_size=max_size))


def cookies_for(cookie: Part, started: Started) -> list[str]:
    if cookie is None:
        return []
    return [started.cookie if cookie is GENUINE else f"{COOKIE_NAME}={cookie}"]


@PROPERTY_SETTINGS
@given(state=parts(300), code=parts(300), cookie=parts(120))
@example(state=GENUINE, code=GENUINE, cookie=GENUINE)  # the one point where an install must happen
@example(state=GENUINE, code="1234567890123.1234567890123." + "ab" * 32, cookie=GENUINE)  # Slack says invalid_code
def test_any_callback_is_answered_below_500_and_only_a_genuine_one_stores(
    app: App, state: Part, code: Part, cookie: Part
) -> None:
    started = start(app)
    before, calls = every_secret(app), len(app.slack.requests)
    query: dict[str, str] = {}
    for name, part, genuine in (("state", state, started.state), ("code", code, started.code)):
        if part is not None:
            query[name] = genuine if part is GENUINE else str(part)

    response = app.callback(urlencode(query), cookies=cookies_for(cookie, started))

    assert response["statusCode"] < 500
    if state is GENUINE and code is GENUINE and cookie is GENUINE:
        assert response["statusCode"] == 200
        after = every_secret(app)
        assert sorted(after) == sorted([*CONFIG_SECRETS, BOT_SECRET])
        assert current_version(after, BOT_SECRET) not in (None, current_version(before, BOT_SECRET))
    else:
        assert every_secret(app) == before
    if state is not GENUINE or cookie is not GENUINE:
        assert len(app.slack.requests) == calls  # no proof of the browser, no Slack call


_QUERY_FRAGMENTS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["code", "state", "error", "access_denied", "=", "&", "+", "%", "%2", "%FF", "%E2%82", "%00"]),
)
RAW_QUERIES = st.one_of(
    st.text(max_size=600),
    st.lists(_QUERY_FRAGMENTS, max_size=24).map("".join),
)


@PROPERTY_SETTINGS
@given(raw=RAW_QUERIES, genuine_state=st.booleans(), cookie=parts(120))
def test_any_raw_query_string_is_answered_below_500_and_stores_nothing(
    app: App, raw: str, genuine_state: bool, cookie: Part
) -> None:
    started = start(app)
    before, calls = every_secret(app), len(app.slack.requests)
    if genuine_state:  # the browser's proof may be good; the rest of the query is anything at all
        raw = f"{raw}&state={quote(started.state)}"

    response = app.callback(raw, cookies=cookies_for(cookie, started))

    assert response["statusCode"] < 500
    assert every_secret(app) == before
    if not (genuine_state and cookie is GENUINE):
        assert len(app.slack.requests) == calls


# -- cookies: several of one name, malformed values, and who may clear them -------------------------------------

SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
COOKIE_TEXT = st.one_of(
    st.text(max_size=120),
    st.text(st.characters(blacklist_categories=()), max_size=60),  # every code point, lone surrogates included
    st.text(SURROGATES, min_size=1, max_size=8),
    st.text(st.sampled_from("ABCabc019_-=+/."), min_size=40, max_size=46),  # near the nonce's shape and length
)


@pytest.mark.parametrize(
    "planted",
    [
        "x" * 43,  # the shape of a nonce, not this browser's
        "\udc80\udc81",  # lone surrogates (were a 500 with a UnicodeEncodeError)
        "é" * 43,
        "not base64 at all!",
    ],
    ids=["another nonce", "surrogates", "non-ASCII", "not base64"],
)
def test_a_planted_cookie_ahead_of_the_genuine_one_does_not_stop_the_install(app: App, planted: str) -> None:
    started = start(app)

    # A sibling subdomain (or plain http) could plant a cookie of the old name ahead of ours; with __Host- it cannot,
    # and a second cookie of the same name that does arrive, first, is simply not the one that verifies.
    response = app.callback(
        {"code": started.code, "state": started.state}, cookies=[f"{COOKIE_NAME}={planted}", started.cookie]
    )

    assert response["statusCode"] == 200, response["body"]
    assert app.secret_names() == [BOT_SECRET]


def test_an_attackers_state_with_a_planted_cookie_never_matches_the_victims_cookie(app: App) -> None:
    victim = start(app)
    attacker = start(app)

    response = app.callback(
        {"code": attacker.code, "state": victim.state}, cookies=[attacker.cookie, f"{COOKIE_NAME}=junk"]
    )

    assert response["statusCode"] == 401
    assert app.slack.requests == []


@PROPERTY_SETTINGS
@given(values=st.lists(COOKIE_TEXT, min_size=1, max_size=3), genuine_too=st.booleans())
@example(values=["\udc80\udc81"], genuine_too=False)
def test_any_malformed_cookie_is_a_400_never_a_500(app: App, values: list[str], genuine_too: bool) -> None:
    started = start(app)
    before, calls = every_secret(app), len(app.slack.requests)
    cookies = [f"{COOKIE_NAME}={v}" for v in values] + ([started.cookie] if genuine_too else [])

    response = app.callback({"code": started.code, "state": started.state}, cookies=cookies)

    if genuine_too:
        assert response["statusCode"] == 200
    else:
        assert 400 <= response["statusCode"] < 500
        assert len(app.slack.requests) == calls
        assert every_secret(app) == before
        assert response["cookies"] == []


@PROPERTY_SETTINGS
@given(state=COOKIE_TEXT)
def test_any_malformed_state_with_the_genuine_cookie_is_a_4xx_without_a_slack_call(app: App, state: str) -> None:
    started = start(app)
    event_state = state.encode("utf-8", "surrogatepass").decode("utf-8", "replace")  # what a URL can carry

    response = app.callback(urlencode({"code": started.code, "state": event_state}), cookies=[started.cookie])

    assert 400 <= response["statusCode"] < 500
    assert app.slack.requests == []


def test_a_callback_failing_its_state_check_leaves_the_pending_install_alone(app: App) -> None:
    started = start(app)

    # Anyone can send the victim's browser to a callback URL: a forged state, or a cancel carrying no state.
    forged = app.callback({"code": started.code, "state": _flip_last(started.state)}, cookies=[started.cookie])
    cancel = app.callback({"error": "access_denied"}, cookies=[started.cookie])
    other_error = app.callback({"error": "invalid_scope", "state": "x"}, cookies=[started.cookie])

    assert [r["cookies"] for r in (forged, cancel, other_error)] == [[], [], []]
    assert cancel["statusCode"] == 200  # the page still says what Slack said
    finished = app.callback({"code": started.code, "state": started.state}, cookies=[started.cookie])
    assert finished["statusCode"] == 200  # the install in progress was never cancelled
    assert any(c.startswith(f"{COOKIE_NAME}=;") for c in finished["cookies"])


def test_a_cancel_carrying_the_matching_state_clears_the_cookie(app: App) -> None:
    started = start(app)

    response = app.callback({"error": "access_denied", "state": started.state}, cookies=[started.cookie])

    assert response["statusCode"] == 200
    assert any(c.startswith(f"{COOKIE_NAME}=;") and "Max-Age=0" in c for c in response["cookies"])
