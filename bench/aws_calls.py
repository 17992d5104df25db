"""AWS and Slack calls per successful callback, in one warm process against moto server and the fake Slack.

The real handlers run through ``sandbox.lambda_runtime`` with the app ``sandbox.app`` drives in the
integration tests (``App``, ``configure``). Secrets Manager calls are counted with a botocore hook on the client
the layer builds (``entrypoints.secretsmanager_client()``): ``before-call`` once per API call, ``before-send``
once per HTTP attempt (so retries show). Slack calls are what the fake Slack recorded.

In Lambda, install and callback are separate functions, each with its own cache; in this one process they share
``entrypoints``' cache. So a scenario emulates each function's cold start by ``entrypoints.reset()`` just before
that function's first invocation; every later invocation of the scenario is warm.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bench import paths
from bench.registry import Options, register
from bench.report import Report
from bench.stats import mean

K = 5  # full installs per scenario
WRITE_OPERATIONS = frozenset(
    {"CreateSecret", "PutSecretValue", "TagResource", "UpdateSecretVersionStage", "RestoreSecret"}
)
T = TypeVar("T")


@dataclass(frozen=True)
class SecretsCall:
    operation: str
    secret: str  # SecretId (or Name for CreateSecret); "" when the call names none
    staged: bool = False  # a version written as AWSPENDING only, or a stage move: the bot_id amendment's two writes

    @property
    def amends(self) -> bool:
        return self.staged or self.operation == "UpdateSecretVersionStage"


class SecretsCounter:
    """Records every Secrets Manager call a botocore client makes (attach it to each new client)."""

    def __init__(self) -> None:
        self.calls: list[SecretsCall] = []
        self.attempts = 0

    def attach(self, client: Any) -> None:
        # botocore's event names use the hyphenated service id: "Secrets Manager" -> "secrets-manager".
        service = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-call.{service}", self._on_call, unique_id="bench-count-call")
        client.meta.events.register(f"before-send.{service}", self._on_send, unique_id="bench-count-send")

    def _on_call(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        body = params.get("body") or b"{}"
        try:
            fields = json.loads(body)
        except ValueError:
            fields = {}
        secret = fields.get("SecretId") or fields.get("Name") or ""
        staged = fields.get("VersionStages") == ["AWSPENDING"]
        self.calls.append(SecretsCall(model.name, str(secret), staged))
        # returns None: a value here would short-circuit the call

    def _on_send(self, **_: Any) -> None:
        self.attempts += 1

    def take(self) -> tuple[list[SecretsCall], int]:
        calls, attempts = self.calls, self.attempts
        self.calls, self.attempts = [], 0
        return calls, attempts


@dataclass
class Invocation:
    function: str  # "install" or "callback"
    first: bool  # the first invocation of this function in its (emulated) container
    status: int
    calls: list[SecretsCall]
    attempts: int
    slack_methods: list[str]
    config_ids: frozenset[str]

    def config_reads(self) -> int:
        return sum(c.operation == "GetSecretValue" and c.secret in self.config_ids for c in self.calls)

    def store_calls(self) -> list[SecretsCall]:
        return [c for c in self.calls if not (c.operation == "GetSecretValue" and c.secret in self.config_ids)]

    def writes(self) -> int:
        return sum(c.operation in WRITE_OPERATIONS for c in self.calls)

    def token_writes(self) -> int:
        """Writes that store the tokens, without the bot_id amendment (stage + compare-and-swap)."""
        return sum(c.operation in WRITE_OPERATIONS and not c.amends for c in self.calls)

    def amendments(self) -> int:
        return sum(c.staged for c in self.calls)

    def pairs_written(self) -> int:
        return len({c.secret for c in self.calls if c.operation in WRITE_OPERATIONS})


@dataclass(frozen=True)
class Scenario:
    label: str
    teams: tuple[str, ...]
    user_scopes: str
    pairs: int  # pairs each callback must store


@dataclass
class Outcome:
    scenario: Scenario
    invocations: list[Invocation] = field(default_factory=list)

    def callbacks(self) -> list[Invocation]:
        return [i for i in self.invocations if i.function == "callback"]


@contextlib.contextmanager
def quiet_service_output() -> Iterator[io.StringIO]:
    """Keep the handlers' log lines and EMF metric lines (stdout) out of the report; hand them back instead."""
    from slack_tokens.observability import logger as service_logger

    buffer = io.StringIO()
    werkzeug = logging.getLogger("werkzeug")  # moto server's request log (stderr)
    werkzeug_level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)
    handlers = [h for h in logging.getLogger(service_logger.name).handlers if isinstance(h, logging.StreamHandler)]
    saved = [h.setStream(buffer) for h in handlers]
    try:
        with contextlib.redirect_stdout(buffer):
            yield buffer
    finally:
        werkzeug.setLevel(werkzeug_level)
        for handler, stream in zip(handlers, saved, strict=True):
            if stream is not None:
                handler.setStream(stream)


@register("aws-calls", "AWS and Slack calls per successful callback (warm process, moto server + fake Slack)")
def run(options: Options, report: Report) -> None:
    paths.ensure_import_paths()
    import pytest

    from sandbox.app import CLIENT_ID, CLIENT_SECRET, App, configure
    from sandbox.aws import MotoServer
    from sandbox.fake_slack import FakeSlack
    from sandbox.lambda_runtime import load_handler
    from slack_tokens import entrypoints

    server = MotoServer().start()
    try:
        with (
            FakeSlack(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as slack,
            pytest.MonkeyPatch.context() as env,
            quiet_service_output() as output,
        ):
            for key, value in server.env().items():
                env.setenv(key, value)
            aws = server.client()
            configure(env, aws, slack)
            handlers = {name: load_handler(name) for name in ("install", "oauth_callback")}
            outcomes = _installs(env, App(handlers=handlers, slack=slack, client=aws), slack)
            entrypoints.reset()
    finally:
        server.stop()
    _print_results(report, outcomes, output.getvalue())


def _installs(env: Any, app: Any, slack: Any) -> list[Outcome]:
    """Every scenario's installs through ``app``, each function's first invocation a cold start, with the Secrets
    Manager and Slack calls each invocation made."""
    from sandbox.app import Browser
    from slack_tokens import entrypoints

    scenarios = (
        Scenario("first install (bot)", tuple(f"T1{n:03d}" for n in range(K)), "", 1),
        Scenario("first install (bot + user)", tuple(f"T2{n:03d}" for n in range(K)), "search:read,users:read", 2),
        Scenario("reinstall (existing bot pair)", tuple(f"T1{n:03d}" for n in range(K)), "", 1),
    )
    counter = SecretsCounter()
    config_ids = frozenset({os.environ["SLACK_APP_SECRET_ID"], os.environ["SLACK_STATE_SECRET_ID"]})
    outcomes: list[Outcome] = []

    def measured(function: str, first: bool, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if first:  # a cold start: fresh collaborators, and a fresh client to count calls on
            entrypoints.reset()
            counter.attach(entrypoints.secretsmanager_client())
        counter.take()
        before = len(slack.requests)
        response = call()
        calls, attempts = counter.take()
        methods = [r.method for r in slack.requests[before:]]
        outcomes[-1].invocations.append(
            Invocation(function, first, response["statusCode"], calls, attempts, methods, config_ids)
        )
        return response

    for scenario in scenarios:
        env.setenv("SLACK_USER_SCOPES", scenario.user_scopes)
        outcomes.append(Outcome(scenario))
        for n, team in enumerate(scenario.teams):
            slack.set_installation(team_id=team, team_name=f"Bench {team}")
            app.browser = Browser()
            query = app.authorize(measured("install", n == 0, app.install))
            measured("callback", n == 0, functools.partial(app.callback, query))
    return outcomes


def _ops(calls: list[SecretsCall], runs: int) -> str:
    counts = Counter(c.operation for c in calls)
    return ", ".join(f"{op} {n / runs:g}" for op, n in sorted(counts.items())) or "-"


def _print_results(report: Report, outcomes: list[Outcome], service_output: str) -> None:
    report.line(f"  {K} full installs per scenario (install -> Slack consent -> callback), one warm process")
    report.subheading("Per successful callback (averages over the scenario's callbacks)")
    rows: list[list[str]] = []
    for outcome in outcomes:
        callbacks = outcome.callbacks()
        store_calls = [c for i in callbacks for c in i.store_calls()]
        rows.append(
            [
                outcome.scenario.label,
                f"{sum(i.status == 200 for i in callbacks)}/{len(callbacks)}",
                f"{mean([i.pairs_written() for i in callbacks]):g}",
                f"{mean([len(i.slack_methods) for i in callbacks]):g}",
                f"{mean([len(i.calls) for i in callbacks]):g}",
                f"{mean([i.config_reads() for i in callbacks]):g}",
                f"{mean([i.writes() for i in callbacks]):g}",
                f"{mean([i.writes() / max(1, i.pairs_written()) for i in callbacks]):g}",
                f"{mean([i.attempts for i in callbacks]):g}",
                _ops(store_calls, len(callbacks)),
            ]
        )
    report.table(
        ["scenario", "200 OK", "pairs", "Slack", "SM calls", "config", "writes", "w/pair", "HTTP", "token-secret ops"],
        rows,
    )
    report.line("  (Slack = Slack API calls; SM calls = Secrets Manager API calls, of which config = GetSecretValue")
    report.line("   on the app/state secrets; writes = Create/Put/Tag/UpdateVersionStage/Restore; HTTP = SM attempts)")

    report.subheading("Configuration reads (GetSecretValue on the app credentials and state key secrets)")
    rows = []
    for function in ("install", "callback"):
        invocations = [i for o in outcomes for i in o.invocations if i.function == function]
        first = [i.config_reads() for i in invocations if i.first]
        later = [i.config_reads() for i in invocations if not i.first]
        rows.append(
            [
                function,
                f"{mean(first):g} (x{len(first)})",
                f"{mean(later):g} (x{len(later)})",
                str(max(later, default=0)),
            ]
        )
    report.table(["function", "first invocation, avg", "later invocations, avg", "later, max"], rows)
    report.line("  (first = the first invocation after an emulated cold start of that function, one per scenario)")
    report.line()

    callbacks = [i for o in outcomes for i in o.callbacks()]
    wrong = [i for o in outcomes for i in o.callbacks() if i.status != 200 or i.pairs_written() != o.scenario.pairs]
    report.check(
        "every callback succeeded and stored its pairs",
        not wrong and all(i.status == 302 for o in outcomes for i in o.invocations if i.function == "install"),
        f"{len(callbacks) - len(wrong)}/{len(callbacks)} callbacks answered 200 with the expected pairs stored",
    )
    exchanges = [i.slack_methods.count("oauth.v2.access") for i in callbacks]
    identities = [i.slack_methods.count("auth.test") for i in callbacks]
    methods = Counter(m for i in callbacks for m in i.slack_methods)
    report.check(
        "Slack: 1 code exchange per callback, plus 1 auth.test for the bot's bot_id",
        all(n == 1 for n in exchanges) and all(n == 1 for n in identities),
        f"{', '.join(f'{m} x{n}' for m, n in methods.items())} over {len(callbacks)} callbacks",
    )
    for outcome in outcomes:
        per_pair = [i.token_writes() / max(1, i.pairs_written()) for i in outcome.callbacks()]
        amended = [i.amendments() for i in outcome.callbacks()]
        report.check(
            f"Secrets Manager: 1 write per stored pair (+2 to add the bot_id), {outcome.scenario.label}",
            all(w == 1 for w in per_pair) and all(n == 1 for n in amended),
            f"token writes per pair min {min(per_pair):g}, max {max(per_pair):g}; bot_id amendments per callback "
            f"{min(amended)}-{max(amended)} (a staged version and a compare-and-swap each)",
        )
    later = [i.config_reads() for o in outcomes for i in o.invocations if not i.first]
    report.check(
        "config reads cached across warm invocations",
        max(later, default=0) == 0,
        f"{sum(later)} config reads in {len(later)} warm invocations",
    )
    problems = [ln for ln in service_output.splitlines() if '"level":"ERROR"' in ln or '"level":"WARNING"' in ln]
    if problems:
        report.note(f"the handlers logged {len(problems)} warning/error line(s); first: {problems[0][:300]}")
