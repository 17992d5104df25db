"""Rotation throughput: 1,000 due pairs, a fake Slack answering in 100 ms and in 300 ms, enforcing
Slack's 600/min limit on ``oauth.v2.access``. Reports refreshes per minute vs the limit (target >= 90%), 429s seen
(target 0), Secrets Manager calls per rotated pair (target <= 3 plus the amortised listing), the run guard's
DynamoDB calls for the whole run (Secrets Manager versions it writes: none) and peak RSS.

Pairs are seeded through Slack's real code grant (the fake's), so every refresh token is one the fake knows. The
fake's clock then jumps ahead so seeding calls fall out of its rate-limit window before the sweep starts.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections import Counter
from typing import Any, NamedTuple

from bench import paths
from bench.aws_calls import quiet_service_output
from bench.registry import Options, register
from bench.report import Report

LIMIT = 600


class _Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@register("rotation", "Rotation throughput: due pairs refreshed per minute under Slack's 600/min limit")
def run(options: Options, report: Report) -> None:
    paths.ensure_import_paths()
    from sandbox.aws import MotoServer

    pairs = 200 if options.quick else 1000
    server = MotoServer().start()
    saved_env = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    try:
        rows = [_measure(server, pairs, latency, report) for latency in (0.1, 0.3)]
    finally:
        server.stop()
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    header = ["Slack latency", "pairs", "rotated", "sweep", "refreshes", "429s", "SM calls/pair", "ListSecrets"]
    header += ["run guard (DynamoDB, whole run)"]
    report.table([*header, "peak RSS*"], rows)
    report.note("* peak RSS of the whole benchmark process, which also hosts moto server and the fake Slack.")


def _seed(slack: Any, store: Any, clock: _Clock, pairs: int) -> None:
    """``pairs`` bot installs through the fake's real code grant, so every refresh token is one it knows."""
    from sandbox.app import CLIENT_ID, CLIENT_SECRET
    from slack_tokens.slack_client import SlackClient

    seeder = SlackClient(slack.api_url)
    for i in range(pairs):
        slack.set_installation(team_id=f"T{i:06d}", team_name=f"W{i}")
        code = slack.grant_code(scope="chat:write", user_scope="", redirect_uri=None)
        access = seeder.exchange_code(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            code=code,
            redirect_uri=None,
            deadline=time.monotonic() + 10,
        )
        store.save_installation(access.pairs()[0], deadline=time.monotonic() + 10)
        if (i + 1) % 500 == 0:
            clock.offset += 61  # keep the seeding itself under the fake's rate limit
    clock.offset += 120  # and out of its rate-limit window when the sweep starts


class _Swept(NamedTuple):
    summary: dict[str, Any]
    elapsed: float
    refreshes: list[Any]
    calls: Counter[str]
    guard_calls: Counter[str]


def _sweep(server: Any, pairs: int, latency: float) -> _Swept:
    """Seed ``pairs`` due pairs, then time one sweep of them with Slack answering after ``latency`` seconds."""
    from local.template import Template
    from sandbox.app import CLIENT_ID, CLIENT_SECRET, GUARD_TABLE, PREFIX
    from sandbox.aws import create_table
    from sandbox.fake_slack import FakeSlack
    from slack_tokens.config import AppCredentials
    from slack_tokens.guard import RunGuard
    from slack_tokens.guard import make_client as make_guard_client
    from slack_tokens.ratelimit import Pacer
    from slack_tokens.rotation import Rotator
    from slack_tokens.slack_client import RetryPolicy, SlackClient
    from slack_tokens.store import TokenStore, make_client

    server.reset()
    clock = _Clock()
    calls: Counter[str] = Counter()
    with (
        FakeSlack(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            token_lifetime=3600,
            clock=clock,
            rate_limits={"oauth.v2.access": LIMIT},
        ) as slack,
        quiet_service_output(),
    ):
        client = make_client()
        dynamodb = make_guard_client()
        create_table(dynamodb, GUARD_TABLE, Template.load().resources["RunGuardTable"]["Properties"])
        store = TokenStore(client, PREFIX)
        _seed(slack, store, clock, pairs)
        slack.clear_requests()
        slack.token_lifetime = 43200
        slack.latency = latency

        def record(model: Any, params: dict[str, Any], **_: Any) -> None:
            body = json.loads(params.get("body") or b"{}")
            target = str(body.get("SecretId") or body.get("Name") or "")
            calls.update([model.name] if model.name == "ListSecrets" or target.startswith(PREFIX) else [])

        def record_guard(model: Any, **_: Any) -> None:
            guard_calls.update([model.name])

        guard_calls: Counter[str] = Counter()
        client.meta.events.register("before-call.secrets-manager", record)
        dynamodb.meta.events.register("before-call.dynamodb", record_guard)
        credentials = AppCredentials(CLIENT_ID, CLIENT_SECRET)
        rotator = Rotator(
            store,
            SlackClient(slack.api_url, limiter=Pacer(590), policy=RetryPolicy(whole_attempts=True)),
            lambda: credentials,
            guard=RunGuard(lambda: dynamodb, GUARD_TABLE),
            margin_seconds=7200,
        )
        started = time.perf_counter()
        summary = rotator.sweep(900).to_json()
        elapsed = time.perf_counter() - started
        refreshes = [r for r in slack.requests if r.form.get("grant_type") == "refresh_token"]
    return _Swept(summary, elapsed, refreshes, calls, guard_calls)


def _measure(server: Any, pairs: int, latency: float, report: Report) -> list[str]:
    summary, elapsed, refreshes, calls, guard_calls = _sweep(server, pairs, latency)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    throttled = sum(1 for r in refreshes if r.status == 429)
    times = sorted(r.time for r in refreshes)
    per_minute = (len(times) - 1) / (times[-1] - times[0]) * 60 if len(times) > 1 else 0.0
    rotated = summary["rotated"]
    per_pair = sum(n for op, n in calls.items() if op != "ListSecrets") / max(rotated, 1)
    label = f"{int(latency * 1000)} ms"
    report.check(
        f"throughput at {label}",
        per_minute >= 0.9 * LIMIT and rotated == pairs,
        f"{per_minute:.0f} refreshes/min, {rotated}/{pairs} rotated (target >= {0.9 * LIMIT:.0f})",
    )
    report.check(f"no 429 at {label}", throttled == 0, f"{throttled} 429s")
    breakdown = ", ".join(f"{op} {n}" for op, n in sorted(calls.items()))
    report.check(
        f"Secrets Manager calls per pair at {label}",
        per_pair <= 3.0,
        f"{per_pair:.2f} per rotated pair + {calls['ListSecrets']} ListSecrets pages ({breakdown})",
    )
    return [
        label,
        str(pairs),
        str(rotated),
        f"{elapsed:.1f} s",
        f"{per_minute:.0f}/min ({per_minute / LIMIT:.0%})",
        str(throttled),
        f"{per_pair:.2f}",
        str(calls["ListSecrets"]),
        ", ".join(f"{n} {op}" for op, n in sorted(guard_calls.items())),
        f"{rss / 1024:.0f} MiB",
    ]
