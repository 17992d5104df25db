"""``SecretsManagerInstallationStore.find_bot``, cold (a new store: one ``GetSecretValue``) and warm (cached: none),
against moto server over HTTP. Reports Secrets Manager calls per lookup and the median latency of each."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from bench.registry import Options, register
from bench.report import Report
from bench.world import World


@register("installation-store", "find_bot cold and warm: Secrets Manager calls and latency per lookup")
def run(options: Options, report: Report) -> None:
    from slack_tokens.installation_store import SecretsManagerInstallationStore

    rounds = 20 if options.quick else 100
    world = World(lifetime=43200, grace=60).start()
    try:
        teams = [f"T{i:05d}" for i in range(rounds)]
        for team in teams:
            world.install(team)
        calls: list[str] = []
        world.sm.meta.events.register(
            "before-call.secrets-manager.GetSecretValue",
            lambda params, **_: calls.append(json.loads(params["body"])["SecretId"]),
        )
        cold, warm, cold_calls, warm_calls = [], [], 0, 0
        for team in teams:
            store = SecretsManagerInstallationStore(prefix=world.store.prefix, client=world.sm)
            cold.append(_timed(store, team))
            cold_calls += len(calls)
            calls.clear()
            warm += [_timed(store, team) for _ in range(10)]
            warm_calls += len(calls)
            calls.clear()
    finally:
        world.stop()
    rows = [
        ["cold (first lookup of a pair)", f"{cold_calls / len(cold):.2f}", f"{statistics.median(cold) * 1000:.2f} ms"],
        ["warm (cached)", f"{warm_calls / len(warm):.2f}", f"{statistics.median(warm) * 1000:.3f} ms"],
    ]
    report.table(["find_bot", "GetSecretValue per lookup", "median latency"], rows)
    report.note("moto server on 127.0.0.1: a real Secrets Manager call adds its network round trip to the cold figure")
    detail = f"{cold_calls} reads for {len(cold)} cold lookups, {warm_calls} for {len(warm)} warm ones"
    report.check("one read per pair per cache period", cold_calls == len(cold) and warm_calls == 0, detail)


def _timed(store: Any, team: str) -> float:
    started = time.perf_counter()
    found = store.find_bot(enterprise_id=None, team_id=team)
    elapsed = time.perf_counter() - started
    assert found is not None and found.bot_refresh_token is None
    return elapsed
