"""The local stack (``make run`` / ``make invoke`` / ``make pairs``), driven the way a person drives it: real HTTP
from a cookie-keeping client, through the local HTTP API, the Slack sandbox's consent form and moto server."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import urllib3

from local import invoke as invoke_command
from local.console import Console
from local.http_api import HttpApi
from local.lambda_host import FunctionHost
from local.stack import LocalStack, Options
from local.template import TEMPLATE_PATH, Template, load_template
from slack_tokens_cli import main as cli

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


# -- a browser: cookies per host, redirects followed by hand ------------------------------------------------------


class Browser:
    def __init__(self) -> None:
        self.http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=30), retries=False)
        self.cookies: dict[str, dict[str, str]] = {}

    def request(self, method: str, url: str, fields: list[tuple[str, str]] | None = None) -> urllib3.BaseHTTPResponse:
        host = urlsplit(url).hostname or ""
        headers = {"User-Agent": "local-stack-test"}
        jar = self.cookies.setdefault(host, {})
        if jar:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        if fields is None:
            response = self.http.request(method, url, headers=headers, redirect=False)
        else:
            response = self.http.request_encode_body(
                method, url, fields=fields, headers=headers, encode_multipart=False, redirect=False
            )
        for cookie in response.headers.getlist("Set-Cookie"):
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in cookie:
                jar.pop(name, None)
            else:
                jar[name] = value
        return response

    def get(self, url: str) -> urllib3.BaseHTTPResponse:
        return self.request("GET", url)


class FormReader(HTMLParser):
    """The consent page's form: its action and the fields a browser would post (hidden inputs)."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: list[tuple[str, str]] = []
        self.buttons: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = attributes.get("action", "")
        elif tag == "input" and attributes.get("name"):
            self.fields.append((attributes["name"], attributes.get("value", "")))
        elif tag == "button" and attributes.get("name"):
            self.buttons.append((attributes["name"], attributes.get("value", "")))


def consent(browser: Browser, stack: LocalStack, decision: str) -> str:
    """Open the install URL, follow it to the sandbox's consent page and press a button; the callback URL."""
    started = browser.get(stack.install_url)
    assert started.status == 302
    consent_url = started.headers["Location"]
    page = browser.get(consent_url)
    assert page.status == 200
    form = FormReader()
    form.feed(page.data.decode())
    assert ("decision", decision) in form.buttons
    decided = browser.request("POST", urljoin(consent_url, form.action), [*form.fields, ("decision", decision)])
    assert decided.status == 302
    callback = decided.headers["Location"]
    assert callback.startswith(stack.redirect_url + "?")
    return str(callback)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def current_version(stack: LocalStack, name: str) -> str | None:
    meta = stack.store.describe(name)
    return meta.current if meta else None


# -- the stack ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def output() -> io.StringIO:
    return io.StringIO()


@pytest.fixture(scope="module")
def state_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local") / "stack.json"


@pytest.fixture(scope="module")
def stack(output: io.StringIO, state_file: Path) -> Iterator[LocalStack]:
    options = Options(port=0, run_schedules=False, state_file=state_file)
    with LocalStack(options, console=Console(output)) as running:
        yield running


@pytest.fixture
def browser() -> Browser:
    return Browser()


def test_install_in_the_sandbox_stores_the_pair_and_shows_the_success_page(
    stack: LocalStack, browser: Browser, output: io.StringIO
) -> None:
    assert stack.slack is not None
    stack.slack.set_installation(team_id="TLOCAL1", team_name="Local One")

    callback = consent(browser, stack, "allow")
    assert browser.cookies["localhost"]["__Host-slack_oauth_state"]  # the install set the state cookie on localhost
    landed = browser.get(callback)

    assert landed.status == 200
    assert landed.headers["Content-Type"].startswith("text/html")
    assert "Installed" in landed.data.decode() and "Local One" in landed.data.decode()
    assert "__Host-slack_oauth_state" not in browser.cookies["localhost"]  # cleared by the callback
    stored = stack.store.read("slack/tokens/team/TLOCAL1/bot").pair
    assert stored.team_id == "TLOCAL1" and stored.token_type == "bot"
    assert stack.slack.is_access_token_valid(stored.access_token)
    assert stored.refresh_token is not None and stack.slack.is_refresh_token_valid(stored.refresh_token)
    assert stored.expires_at is not None and abs(stored.expires_at - (time.time() + 600)) < 30  # sandbox lifetime
    assert "pair stored: slack/tokens/team/TLOCAL1/bot" in output.getvalue()
    assert stored.access_token not in output.getvalue() and stored.refresh_token not in output.getvalue()


def test_cancel_on_the_consent_page_shows_the_cancelled_page_and_stores_nothing(
    stack: LocalStack, browser: Browser
) -> None:
    assert stack.slack is not None
    stack.slack.set_installation(team_id="TCANCEL", team_name="Cancelled")

    callback = consent(browser, stack, "cancel")
    assert parse_qs(urlsplit(callback).query)["error"] == ["access_denied"]
    landed = browser.get(callback)

    assert landed.status == 200
    assert "cancelled" in landed.data.decode().lower()
    assert stack.store.describe("slack/tokens/team/TCANCEL/bot") is None


def test_a_replayed_callback_is_refused_and_changes_nothing(stack: LocalStack, browser: Browser) -> None:
    assert stack.slack is not None
    stack.slack.set_installation(team_id="TREPLAY", team_name="Replay")
    callback = consent(browser, stack, "allow")
    state_cookie = browser.cookies["localhost"]["__Host-slack_oauth_state"]
    assert browser.get(callback).status == 200
    version = current_version(stack, "slack/tokens/team/TREPLAY/bot")

    again = browser.get(callback)  # the same browser: its state cookie is gone
    browser.cookies["localhost"]["__Host-slack_oauth_state"] = state_cookie
    with_cookie = browser.get(callback)  # even with the cookie back, the code is spent

    assert 400 <= again.status < 500
    assert 400 <= with_cookie.status < 500
    assert current_version(stack, "slack/tokens/team/TREPLAY/bot") == version


def test_an_unknown_route_is_a_404_like_api_gateway(stack: LocalStack, browser: Browser) -> None:
    for method, path in (("GET", "/nope"), ("POST", "/slack/install"), ("GET", "/slack/install/extra")):
        response = browser.request(method, stack.api_url + path, [] if method == "POST" else None)
        assert response.status == 404
        assert response.headers["Content-Type"] == "application/json"
        assert json.loads(response.data) == {"message": "Not Found"}


def test_the_operator_view_lists_pairs_without_tokens(
    stack: LocalStack, browser: Browser, state_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stack.slack is not None and stack.moto is not None
    stack.slack.set_installation(team_id="TPAIRS", team_name="Pairs")
    assert browser.get(consent(browser, stack, "allow")).status == 200
    pair = stack.store.read("slack/tokens/team/TPAIRS/bot").pair

    assert cli.main(["pairs", "--state-file", str(state_file)]) == 0  # what `make pairs` runs

    printed = capsys.readouterr().out
    (line,) = [row for row in printed.splitlines() if "TPAIRS" in row]
    assert line.split()[:3] == ["slack/tokens/team/TPAIRS/bot", "TPAIRS", "bot"]
    assert "active" in line and ("9m" in line or "10m" in line)
    assert "_lease" not in printed
    assert pair.access_token not in printed and str(pair.refresh_token) not in printed


# -- every sample event, through the same stack ----------------------------------------------------------------------

EVENT_FUNCTIONS = {
    "install.json": "InstallFunction",
    "oauth_callback.json": "OAuthCallbackFunction",
    "oauth_callback_cancelled.json": "OAuthCallbackFunction",
    "rotate_sweep.json": "RotateFunction",
    "rotate_one.json": "RotateFunction",
    "exchange_dry_run.json": "ExchangeFunction",
    "exchange_some.json": "ExchangeFunction",
    "exchange_all.json": "ExchangeFunction",
}


def test_every_sample_event_has_a_function() -> None:
    assert sorted(EVENT_FUNCTIONS) == sorted(p.name for p in EVENTS.glob("*.json"))


def test_every_sample_event_runs_against_the_local_stack(stack: LocalStack, browser: Browser) -> None:
    assert stack.slack is not None
    stack.slack.set_installation(team_id="T0001", team_name="Sandbox Workspace")  # the pair the samples name
    assert browser.get(consent(browser, stack, "allow")).status == 200
    before = current_version(stack, "slack/tokens/team/T0001/bot")

    results = {name: stack.invoke(fn, json.loads((EVENTS / name).read_text())) for name, fn in EVENT_FUNCTIONS.items()}

    assert results["install.json"]["statusCode"] == 302
    assert results["install.json"]["headers"]["Location"].startswith(stack.slack.authorize_url)
    assert results["oauth_callback.json"]["statusCode"] in (400, 401)  # the sample's state is a placeholder
    assert results["oauth_callback_cancelled.json"]["statusCode"] == 200
    assert results["rotate_one.json"]["rotated"] == 1  # forced, though not yet due
    assert current_version(stack, "slack/tokens/team/T0001/bot") != before
    assert results["rotate_sweep.json"]["failed"] == 0
    assert results["exchange_dry_run.json"]["dry_run"] is True
    assert results["exchange_dry_run.json"]["would_exchange"] == []  # no legacy pair here
    assert results["exchange_all.json"]["failed"] == 0
    assert "failed" in results["exchange_some.json"]  # a rotating pair is not a legacy one: reported, not raised


def test_make_invoke_prints_the_result_json(capsys: pytest.CaptureFixture[str]) -> None:
    separate = ["--param", "TokenSecretPrefix=invoke-test/"]  # moto's state is per process: keep clear of `stack`
    assert invoke_command.main(["RotateFunction", str(EVENTS / "rotate_sweep.json"), *separate]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["failed"] == 0 and summary["due"] == 0

    assert invoke_command.main(["NoSuchFunction", str(EVENTS / "rotate_sweep.json")]) == 2
    assert "RotateFunction" in capsys.readouterr().err


# -- the schedule ---------------------------------------------------------------------------------------------------


def test_the_local_schedule_rotates_a_short_lived_pair() -> None:
    output = io.StringIO()
    # 60 s tokens are due at once (margin 300 s); a prefix of its own, as moto's state is shared within a process
    options = Options(port=0, token_lifetime=60, rotate_every=0.3, parameters={"TokenSecretPrefix": "scheduled/"})
    with LocalStack(options, console=Console(output)) as stack:
        assert stack.slack is not None
        browser = Browser()
        assert browser.get(consent(browser, stack, "allow")).status == 200
        name = "scheduled/team/T0001/bot"
        installed = stack.store.read(name)

        wait_for(lambda: current_version(stack, name) != installed.version_id)

        rotated = stack.store.read(name).pair
        assert rotated.access_token != installed.pair.access_token
        assert stack.slack.is_access_token_valid(rotated.access_token)
        assert installed.pair.refresh_token is not None
        assert stack.slack.refresh_count(installed.pair.refresh_token) >= 1
        wait_for(
            lambda: "RotationSchedule -> RotateFunction: " in output.getvalue() and "rotated=1" in output.getvalue()
        )


# -- make run, as a process ----------------------------------------------------------------------------------------


def test_make_run_serves_until_sigint_and_exits_0(tmp_path: Path) -> None:
    state_file = tmp_path / "stack.json"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLACK_"))}
    process = subprocess.Popen(  # noqa: S603 - our own module, run by this interpreter
        [sys.executable, "-m", "local.run", "--port", "0", "--state-file", str(state_file)],
        cwd=ROOT,
        env=environment | {"ROTATE_EVERY": "3600"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(state_file.exists, timeout=30)
        running = json.loads(state_file.read_text())
        assert Browser().get(running["install_url"]).status == 302
        assert running["install_url"].startswith("http://localhost:")
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=20)
    assert process.returncode == 0, out
    assert running["install_url"] in out
    assert "GET /slack/install -> 302 InstallFunction" in out
    assert out.rstrip().endswith("stopped")
    assert not state_file.exists()


# -- a new route needs no change: the exact payload 2.0 event, through a template of our own ------------------------

ECHO_TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Greeting: {Type: String, Default: hello}
Globals:
  Function:
    Runtime: python3.13
    Timeout: 7
    Environment:
      Variables:
        GREETING: !Sub "${Greeting} from ${AWS::Region}"
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/echo/
      Handler: app.echo
      Events:
        Named: {Type: HttpApi, Properties: {ApiId: !Ref Api, Method: ANY, Path: "/echo/{name}"}}
        Greedy: {Type: HttpApi, Properties: {ApiId: !Ref Api, Method: GET, Path: "/files/{path+}"}}
  RawFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/echo/
      Handler: app.raw
      Events:
        Raw: {Type: HttpApi, Properties: {ApiId: !Ref Api, Method: GET, Path: /raw}}
  BoomFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/echo/
      Handler: app.boom
      Events:
        Boom: {Type: HttpApi, Properties: {ApiId: !Ref Api, Method: GET, Path: /boom}}
"""

ECHO_APP = """
import base64
import os


def echo(event, context):
    return {
        "event": event,
        "greeting": os.environ["GREETING"],
        "remaining_ms": context.get_remaining_time_in_millis(),
        "function_name": context.function_name,
    }


def raw(event, context):
    return {
        "statusCode": 201,
        "headers": {"Content-Type": "application/octet-stream", "X-One": "1"},
        "cookies": ["a=1; Path=/", "b=2; Path=/; HttpOnly"],
        "body": base64.b64encode(b"\\x00\\x01binary").decode(),
        "isBase64Encoded": True,
    }


def boom(event, context):
    raise RuntimeError("boom")
"""


@pytest.fixture
def echo_api(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "functions" / "echo").mkdir(parents=True)
    (tmp_path / "functions" / "echo" / "app.py").write_text(ECHO_APP)
    (tmp_path / "template.yaml").write_text(ECHO_TEMPLATE)
    template = Template.load(tmp_path / "template.yaml")
    host = FunctionHost(template.functions(), aws_environment={"AWS_REGION": "us-east-1"}).start()
    api = HttpApi(template.routes(), host.invoke, port=0).start()
    try:
        yield f"http://127.0.0.1:{api.port}"
    finally:
        api.stop()
        host.stop()


def test_a_request_becomes_the_exact_payload_v2_event(echo_api: str) -> None:
    headers = urllib3.HTTPHeaderDict(
        {"User-Agent": "probe/1", "Cookie": "a=1; b=2", "Content-Type": "application/json"}
    )
    headers.add("X-Multi", "one")
    headers.add("X-Multi", "two")
    started = time.time()

    response = urllib3.request(
        "POST", f"{echo_api}/echo/world?x=1&x=2&y=a%20b&empty=", headers=headers, body=b'{"hi": 1}', redirect=False
    )

    assert response.status == 200  # no statusCode in the result: API Gateway infers 200 + JSON
    assert response.headers["Content-Type"] == "application/json"
    answer = response.json()
    event = answer["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "ANY /echo/{name}"
    assert event["rawPath"] == "/echo/world"
    assert event["rawQueryString"] == "x=1&x=2&y=a%20b&empty="
    assert event["queryStringParameters"] == {"x": "1,2", "y": "a b", "empty": ""}
    assert event["pathParameters"] == {"name": "world"}
    assert event["cookies"] == ["a=1", "b=2"]
    assert "cookie" not in event["headers"]
    assert all(name == name.lower() for name in event["headers"])
    assert event["headers"]["x-multi"] == "one,two"
    assert event["headers"]["user-agent"] == "probe/1"
    assert event["body"] == '{"hi": 1}' and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["http"] == {
        "method": "POST",
        "path": "/echo/world",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "probe/1",
    }
    assert context["stage"] == "$default" and context["routeKey"] == "ANY /echo/{name}"
    assert context["domainName"] == urlsplit(echo_api).netloc
    assert context["requestId"] == response.headers["apigw-requestid"]
    assert started * 1000 - 1000 <= context["timeEpoch"] <= time.time() * 1000 + 1000
    assert answer["greeting"] == "hello from us-east-1"  # !Sub in Globals, resolved
    assert 6000 < answer["remaining_ms"] <= 7000  # the template's Timeout
    assert answer["function_name"] == "EchoFunction"


def test_binary_bodies_greedy_paths_and_absent_fields(echo_api: str) -> None:
    binary = urllib3.request(
        "PUT", f"{echo_api}/echo/x", body=b"\x00\xff", headers={"Content-Type": "application/octet-stream"}
    ).json()["event"]
    assert binary["isBase64Encoded"] is True and binary["body"] == "AP8="

    greedy = urllib3.request("GET", f"{echo_api}/files/a/b/c.txt").json()["event"]
    assert greedy["routeKey"] == "GET /files/{path+}"
    assert greedy["pathParameters"] == {"path": "a/b/c.txt"}
    assert "queryStringParameters" not in greedy and "cookies" not in greedy and "body" not in greedy
    assert greedy["rawQueryString"] == ""


def test_the_result_becomes_the_response(echo_api: str) -> None:
    raw = urllib3.request("GET", f"{echo_api}/raw")
    assert raw.status == 201
    assert raw.data == b"\x00\x01binary"
    assert raw.headers["Content-Type"] == "application/octet-stream" and raw.headers["X-One"] == "1"
    assert raw.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/; HttpOnly"]

    boom = urllib3.request("GET", f"{echo_api}/boom")
    assert boom.status == 500 and boom.json() == {"message": "Internal Server Error"}

    missing = urllib3.request("GET", f"{echo_api}/echo")
    assert missing.status == 404 and missing.json() == {"message": "Not Found"}


# -- the template reader ----------------------------------------------------------------------------------------------


def test_the_route_reader_finds_every_http_api_route_of_template_yaml() -> None:
    document = load_template(TEMPLATE_PATH.read_text(encoding="utf-8"))
    declared = {
        (name, event["Properties"]["Method"].upper(), event["Properties"]["Path"])
        for name, resource in document["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
        for event in (resource["Properties"].get("Events") or {}).values()
        if event["Type"] == "HttpApi"
    }

    found = {(route.function, route.method, route.path) for route in Template.load().routes()}

    assert found == declared
    assert ("InstallFunction", "GET", "/slack/install") in found
    assert ("OAuthCallbackFunction", "GET", "/slack/oauth_redirect") in found
