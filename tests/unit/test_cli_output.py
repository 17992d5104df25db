"""What ``slack-tokens`` prints and decides without AWS: durations, tables, colour, samconfig, the outcome words,
and the invoke path's handling of a throttled function (a small Lambda Invoke API over HTTP on 127.0.0.1)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from slack_tokens_cli.aws import Aws
from slack_tokens_cli.cmd_rotate import outcome
from slack_tokens_cli.confirm import confirmed
from slack_tokens_cli.errors import CliError
from slack_tokens_cli.health import Health, findings
from slack_tokens_cli.invoke import invoke
from slack_tokens_cli.output import Out, ago, duration, parse_duration, table
from slack_tokens_cli.stack import Target, samconfig


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), (" 2H ", 7200)],
)
def test_durations_parse(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "2x", "h", "2h soon", "-5m"])
def test_anything_else_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_durations_read_at_a_glance() -> None:
    assert [duration(s) for s in (0, 59, 60, 185, 3600, 7260, 86400 + 3600 * 4)] == [
        "0s",
        "59s",
        "1m 00s",
        "3m 05s",
        "1h 00m",
        "2h 01m",
        "1d 04h",
    ]
    assert ago(0.2) == "just now" and ago(125) == "2m 05s ago"


def test_a_table_aligns_on_the_text_and_colours_only_when_asked() -> None:
    rows = [[("a-long-name", "green"), ("x", "")], [("b", "red"), ("yy", "")]]

    plain = table(Out(io.StringIO(), color=False), ("NAME", "V"), rows)
    coloured = table(Out(io.StringIO(), color=True), ("NAME", "V"), rows)

    assert plain.splitlines() == ["NAME         V", "a-long-name  x", "b            yy"]
    assert "\033[32ma-long-name\033[0m" in coloured and "\033[31mb          \033[0m" in coloured
    assert [line.replace("\033[", "") for line in coloured.splitlines()] != plain.splitlines()


def test_colour_follows_the_stream_and_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert Out(Terminal()).color is True
    assert Out(io.StringIO()).color is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert Out(Terminal()).color is False


def test_samconfig_gives_the_stack_name_and_region_of_the_nearest_file(tmp_path: Path) -> None:
    (tmp_path / "samconfig.toml").write_text(
        'version = 0.1\n[default.global.parameters]\nstack_name = "mine"\n'
        '[default.deploy.parameters]\nregion = "eu-west-1"\n',
        encoding="utf-8",
    )
    (tmp_path / "deeper").mkdir()

    assert samconfig(tmp_path / "deeper") == {"stack_name": "mine", "region": "eu-west-1"}
    (tmp_path / "samconfig.toml").write_text("not toml [", encoding="utf-8")
    assert samconfig(tmp_path) == {}


def test_the_repositorys_samconfig_names_the_default_stack() -> None:
    assert samconfig(Path(__file__).parent)["stack_name"] == "slack-token-lifecycle"


@pytest.mark.parametrize(
    ("summary", "words"),
    [
        ({"rotated": 1}, "rotated"),
        ({"rotated": 1, "recovered": 1}, "recovered (a stored rotation was promoted)"),
        ({"failed": 1, "failures": {"slack_error": 1}}, "failed: slack_error"),
        ({"deferred": 1, "blocked_by": "RotateFunction/abc"}, "deferred: the run guard is held by RotateFunction/abc"),
        ({"needs_reinstall": 1}, "needs a reinstall (Slack refused its refresh token)"),
        ({"skipped": 1}, "skipped (retired, legacy or awaiting a reinstall)"),
        ({"error": "secret_id must be a secret name or ARN"}, "refused: secret_id must be a secret name or ARN"),
    ],
)
def test_one_pairs_summary_in_words(summary: dict[str, Any], words: str) -> None:
    assert outcome(summary)[0] == words


# -- the invoke path against a throttling Lambda API ----------------------------------------------------------------


class Throttling:
    """Lambda's Invoke API answering 429 TooManyRequestsException ``busy`` times, then a summary."""

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.calls: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                fake.calls.append(json.loads(body))
                if len(fake.calls) <= fake.busy:
                    self._send(429, {"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}, "TooManyRequests")
                else:
                    self._send(200, {"due": 0, "rotated": 0}, None)

            def _send(self, status: int, payload: dict[str, Any], error: str | None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                if error:
                    self.send_header("x-amzn-ErrorType", f"{error}Exception")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def throttling() -> Iterator[Throttling]:
    fake = Throttling(busy=2)
    yield fake
    fake.server.shutdown()


def target_at(url: str) -> Target:
    aws = Aws(
        region="us-east-1", lambda_endpoint=url, credentials={"aws_access_key_id": "t", "aws_secret_access_key": "t"}
    )
    return Target("test", aws, "slack/tokens/", "RotateFunction", None, None)


def test_a_throttled_invoke_did_not_run_and_is_tried_again(throttling: Throttling) -> None:
    waits: list[float] = []

    summary = invoke(target_at(throttling.url), "RotateFunction", "RotateFunction", {}, sleep=waits.append)

    assert summary == {"due": 0, "rotated": 0}
    assert throttling.calls == [{}, {}, {}] and waits == [2.0, 4.0]


def test_a_function_busy_for_longer_than_the_patience_is_reported(throttling: Throttling) -> None:
    throttling.busy = 100

    with pytest.raises(CliError, match="RotateFunction is busy") as error:
        invoke(target_at(throttling.url), "RotateFunction", "RotateFunction", {}, patience=5, sleep=lambda _: None)

    assert error.value.status == 1 and len(throttling.calls) == 3  # waited 2 + 4 s: past 5, the third answer ends it


def test_a_stack_without_the_function_says_so() -> None:
    with pytest.raises(CliError, match="no ExchangeFunction"):
        invoke(target_at("http://127.0.0.1:9"), None, "ExchangeFunction", {})


class Keyboard(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("typed", "answer"), [("y\n", True), ("yes\n", True), ("\n", False), ("n\n", False)])
def test_a_terminal_is_asked_and_only_yes_goes_ahead(typed: str, answer: bool) -> None:
    asked = io.StringIO()

    assert confirmed("Retire 1 pair(s)?", yes=False, stdin=Keyboard(typed), stderr=asked) is answer
    assert asked.getvalue() == "Retire 1 pair(s)? [y/N] "


def test_yes_needs_no_terminal_and_without_it_a_pipe_is_refused() -> None:
    assert confirmed("Go?", yes=True, stdin=io.StringIO()) is True
    with pytest.raises(CliError, match="pass --yes") as refused:
        confirmed("Go?", yes=False, stdin=io.StringIO())
    assert refused.value.status == 2


def test_the_last_sweeps_failures_and_age_need_attention() -> None:
    now = 10_000.0
    target = Target("test", Aws(region="us-east-1"), "slack/tokens/", None, None, None, sweep_every=60.0)
    failed = {"at": now - 30, "ago_seconds": 30, "holder": "h", "summary": {"failed": 2, "failures": {"x": 2}}}
    old = {"at": now - 600, "ago_seconds": 600, "holder": "h", "summary": {"guard": "busy", "blocked_by": "R/1"}}

    def codes(sweep: dict[str, Any]) -> list[str]:
        return [f.code for f in findings(Health(now, [], None, sweep, None, None), target)]

    assert codes(failed) == ["sweep_failed"]
    assert codes(old) == ["guard_blocked", "sweep_overdue"]  # 600 s > 3 periods of 60 s
    assert codes({**old, "ago_seconds": 100, "summary": {"guard": "unavailable"}}) == ["guard_problem"]


def test_the_command_is_not_in_the_lambda_layer_and_no_function_imports_it() -> None:
    root = Path(__file__).resolve().parents[2]
    layer = root / "layers" / "common"
    shipped = [*layer.rglob("*.py"), *(root / "functions").rglob("*.py")]

    assert not (layer / "slack_tokens_cli").exists() and not (layer / "slack_tokens" / "legacy_import.py").exists()
    assert shipped and not [p for p in shipped if "slack_tokens_cli" in p.read_text(encoding="utf-8")]
