"""The install flow in a real browser: headless Chromium (Debian's ``chromium``, driven by Playwright) against the
local stack (``make run``'s ``LocalStack``): install URL -> the Slack sandbox's consent page -> Allow or Cancel ->
the callback's page, and what the local Secrets Manager holds afterwards.

It needs ``/usr/bin/chromium`` and the ``playwright`` package (requirements-dev.txt); Playwright's own browser
download is not used. Without them the module is skipped on a developer's machine, and fails under CI (``CI`` set),
where ``.ci/run`` installs Chromium. The success page's screenshot is written to ``artifacts/e2e/success.png``.
"""

from __future__ import annotations

import importlib.util
import io
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.console import Console
from local.stack import LocalStack, Options
from slack_tokens.state import COOKIE_NAME, STATE_TTL_SECONDS

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "artifacts" / "e2e" / "success.png"
CHROMIUM = Path("/usr/bin/chromium")
# Headless, and quiet on the network: Chromium's own background connections (updates, sync, field trials) have
# nowhere to go on a closed machine, and only 127.0.0.1 is needed here.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _missing() -> str | None:
    needs = []
    if importlib.util.find_spec("playwright") is None:
        needs.append("the playwright package (pip install -r requirements-dev.txt)")
    if not os.access(CHROMIUM, os.X_OK):
        needs.append(f"Debian's Chromium at {CHROMIUM} (apt-get install -y --no-install-recommends chromium)")
    return "the browser test needs " + " and ".join(needs) if needs else None


_PROBLEM = _missing()
if _PROBLEM is not None:
    if IN_CI:
        pytest.fail(f"{_PROBLEM}; under CI it must run (.ci/run installs Chromium)", pytrace=False)
    pytest.skip(f"{_PROBLEM}; CI installs both and runs it", allow_module_level=True)

from playwright.sync_api import Browser, BrowserContext, Cookie, Page, Response, expect, sync_playwright  # noqa: E402

pytestmark = pytest.mark.e2e

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# -- the stack and the browser -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def output() -> io.StringIO:
    return io.StringIO()


@pytest.fixture(scope="module")
def stack(output: io.StringIO) -> Iterator[LocalStack]:
    # No schedule: a rotation between two reads would change the versions this module compares.
    with LocalStack(Options(port=0, run_schedules=False), console=Console(output, color=False)) as running:
        # The state cookie is `Secure`: Chromium keeps it over plain http only on localhost, a secure context.
        assert running.public_url.startswith("http://localhost:")
        yield running
        if running.moto is not None:
            running.moto.reset()  # moto's state is per process: leave nothing behind for the modules after this one


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile per test: no cookie carries over from one install to the next."""
    context = chromium.new_context(viewport={"width": 1024, "height": 640})
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


# -- what a person does ------------------------------------------------------------------------------------------


def open_consent(page: Page, stack: LocalStack) -> None:
    """Open the install URL: the app's 302 leads to the sandbox's consent page."""
    assert stack.slack is not None
    response = page.goto(stack.install_url)
    assert response is not None and response.status == 200
    assert page.url.startswith(stack.slack.authorize_url + "?")
    expect(page.get_by_role("button", name="Allow", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Cancel", exact=True)).to_be_visible()


def press(page: Page, stack: LocalStack, button: str) -> Response:
    """Press a button on the consent page; the callback's response (its ``url`` is the exact callback URL)."""
    with page.expect_response(lambda response: response.url.startswith(stack.redirect_url + "?")) as callback:
        page.get_by_role("button", name=button, exact=True).click()
    page.wait_for_load_state()
    return callback.value


def state_cookies(context: BrowserContext) -> list[Cookie]:
    return [cookie for cookie in context.cookies() if cookie["name"] == COOKIE_NAME]


def current_version(stack: LocalStack, name: str) -> str | None:
    meta = stack.store.describe(name)
    return meta.current if meta else None


def bot_secret(team_id: str) -> str:
    return f"slack/tokens/team/{team_id}/bot"


# -- the tests ---------------------------------------------------------------------------------------------------


def test_allow_stores_the_pair_and_shows_the_success_page(stack: LocalStack, page: Page, output: io.StringIO) -> None:
    assert stack.slack is not None and stack.template is not None
    stack.slack.set_installation(team_id="T0001", team_name="Sandbox Workspace")
    SCREENSHOT.unlink(missing_ok=True)

    open_consent(page, stack)
    expect(page.locator("h1 strong")).to_have_text("Sandbox Workspace")
    scopes = stack.template.parameters["SlackScopes"].split(",")
    assert scopes == ["chat:write", "commands"]  # the template's default, as the consent page must list it
    for scope in scopes:
        expect(page.locator("li code").get_by_text(scope, exact=True)).to_be_visible()

    callback = press(page, stack, "Allow")

    assert callback.status == 200
    assert page.url == callback.url
    expect(page.get_by_role("heading", level=1)).to_have_text("Installed")
    expect(page.get_by_text("The app was added to Sandbox Workspace.")).to_be_visible()
    stored = stack.store.read(bot_secret("T0001")).pair
    assert stored.team_id == "T0001" and stored.token_type == "bot"
    assert stack.slack.is_access_token_valid(stored.access_token)
    assert stored.refresh_token is not None and stack.slack.is_refresh_token_valid(stored.refresh_token)
    shown = page.content()
    assert stored.access_token not in shown and stored.refresh_token not in shown
    assert f"pair stored: {bot_secret('T0001')}" in output.getvalue()

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOT, full_page=True)
    image = SCREENSHOT.read_bytes()
    assert image.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", image[16:24])  # the IHDR chunk: the page's size in pixels
    assert width >= 1024 and height >= 640
    assert len(image) > 5_000  # a page with text on it, not an empty canvas


def test_cancel_shows_the_cancelled_page_and_stores_nothing(
    stack: LocalStack, context: BrowserContext, page: Page
) -> None:
    assert stack.slack is not None
    stack.slack.set_installation(team_id="T0002", team_name="Cancelling Workspace")

    open_consent(page, stack)
    expect(page.locator("h1 strong")).to_have_text("Cancelling Workspace")
    callback = press(page, stack, "Cancel")

    assert callback.status == 200
    assert "error=access_denied" in callback.url
    expect(page.get_by_role("heading", level=1)).to_have_text("Install cancelled")
    expect(page.get_by_role("link", name="Add to Slack")).to_have_attribute("href", stack.install_url)
    assert stack.store.describe(bot_secret("T0002")) is None
    assert state_cookies(context) == []


def test_a_replayed_callback_is_refused_and_changes_nothing(
    stack: LocalStack, context: BrowserContext, page: Page
) -> None:
    assert stack.slack is not None
    stack.slack.set_installation(team_id="T0003", team_name="Replay Workspace")
    open_consent(page, stack)
    (cookie,) = state_cookies(context)
    callback = press(page, stack, "Allow")
    assert callback.status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text("Installed")
    version = current_version(stack, bot_secret("T0003"))
    assert version is not None
    pair = stack.store.read(bot_secret("T0003")).pair

    replay = page.goto(callback.url)  # the same browser, the exact callback URL: its state cookie is spent
    assert replay is not None and replay.status == 400
    expect(page.get_by_role("heading", level=1)).to_have_text("Install link not valid")

    context.add_cookies([cookie])  # even with its state cookie put back, Slack's code is single-use
    again = page.goto(callback.url)
    assert again is not None and again.status == 400
    expect(page.get_by_role("heading", level=1)).to_have_text("Install link already used")

    assert current_version(stack, bot_secret("T0003")) == version
    assert pair.refresh_token is not None and stack.slack.is_refresh_token_valid(pair.refresh_token)


def test_the_state_cookie_is_httponly_lax_and_cleared_by_the_callback(
    stack: LocalStack, context: BrowserContext, page: Page
) -> None:
    assert stack.slack is not None
    stack.slack.set_installation(team_id="T0004", team_name="Cookie Workspace")

    open_consent(page, stack)

    (cookie,) = state_cookies(context)
    assert cookie["domain"] == "localhost" and cookie["path"] == "/"
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is True
    assert time.time() < cookie["expires"] <= time.time() + STATE_TTL_SECONDS + 5

    assert press(page, stack, "Allow").status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text("Installed")
    assert state_cookies(context) == []
    assert stack.store.describe(bot_secret("T0004")) is not None
