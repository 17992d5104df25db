"""Every reply of the rotate and exchange functions has one shape: the same keys whatever happened (a refused event,
a busy guard, a run Slack stopped), so a caller reading any key of a reply never meets a KeyError; and each
summary lists the metrics it stands for."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from slack_tokens import entrypoints
from slack_tokens.guard import GuardState, Hold, Verdict
from slack_tokens.observability import Metric
from slack_tokens.outcomes import (
    EXCHANGE_SUMMARY_KEYS,
    SUMMARY_KEYS,
    ExchangeSummary,
    Outcome,
    PairResult,
    Summary,
)

CONTEXT = SimpleNamespace(function_name="f", aws_request_id="r", get_remaining_time_in_millis=lambda: 60_000)

EVERY_RESULT = [
    Outcome(f"p{i}", result, "why" if result is PairResult.FAILED else None) for i, result in enumerate(PairResult)
]


def summaries() -> list[Summary]:
    return [
        Summary(),
        Summary(due=3, outcomes=EVERY_RESULT, lag_seconds=120, guard=Hold(state=GuardState.ACQUIRED)),
        Summary(due=1, guard=Hold(state=GuardState.BUSY, holder="other/run", held_for=4.2, waited=16.0)),
        Summary(guard=Hold(state=GuardState.TAKEN_OVER, took_over=Verdict.OVERDUE)),
        Summary.refused("secret_id must be a secret name or ARN"),
    ]


@pytest.mark.parametrize("summary", summaries())
def test_every_rotation_summary_has_the_same_keys(summary: Summary) -> None:
    assert set(summary.to_json()) == SUMMARY_KEYS


@pytest.mark.parametrize("summary", summaries())
@pytest.mark.parametrize(("dry_run", "stopped"), [(False, None), (True, None), (False, "token_rotation_not_enabled")])
def test_every_exchange_summary_has_the_same_keys(summary: Summary, dry_run: bool, stopped: str | None) -> None:
    assert set(ExchangeSummary(run=summary, dry_run=dry_run, stopped=stopped).to_json()) == EXCHANGE_SUMMARY_KEYS


@pytest.mark.parametrize("event", [{"secret_id": 7}, {"secret_id": ""}, {"secret_id": "x" * 2049}])
def test_a_refused_rotate_event_answers_with_a_whole_summary(event: dict[str, Any]) -> None:
    reply = entrypoints.rotate(event, CONTEXT)

    assert set(reply) == SUMMARY_KEYS
    assert reply["error"] == "secret_id must be a secret name or ARN"
    assert (reply["failed"], reply["failures"], reply["rotated"], reply["due"]) == (1, {"bad_event": 1}, 0, 0)


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        ({"secret_ids": "slack/tokens/team/T1/bot"}, "secret_ids must be a list of secret names or ARNs"),
        ({"secret_ids": [""]}, "secret_ids must be a list of secret names or ARNs"),
        ({"dry_run": "yes"}, "dry_run must be true or false"),
    ],
)
def test_a_refused_exchange_event_answers_with_a_whole_summary(event: dict[str, Any], problem: str) -> None:
    reply = entrypoints.exchange(event, CONTEXT)

    assert set(reply) == EXCHANGE_SUMMARY_KEYS
    assert reply["error"] == problem and reply["failures"] == {"bad_event": 1}
    assert (reply["exchanged"], reply["dry_run"], reply["would_exchange"], reply["stopped"]) == (0, False, [], None)


def test_each_result_is_counted_once_where_the_summary_says() -> None:
    report = Summary(due=3, outcomes=EVERY_RESULT).to_json()

    assert report["rotated"] == 2 and report["recovered"] == 1  # rotated counts recovered pairs too
    assert report["superseded"] == 2  # superseded + lost_race
    assert report["skipped"] == 9 and report["deferred"] == 1 and report["needs_reinstall"] == 1
    assert report["failed"] == 1 and report["failures"] == {"why": 1}


def test_a_rotation_summary_lists_its_metrics() -> None:
    outcomes = [Outcome("a", PairResult.ROTATED), Outcome("b", PairResult.FAILED, "answer_lost")]
    summary = Summary(due=2, outcomes=outcomes, lag_seconds=300, guard=Hold(state=GuardState.ACQUIRED))

    metrics = summary.metrics()

    assert Metric("Rotated", 1) in metrics and Metric("RotationDue", 2) in metrics
    assert Metric("RotationFailedByReason", 1, "answer_lost") in metrics
    assert Metric("RotationLagSeconds", 300, unit="Seconds") in metrics
    assert Metric("RotationBlocked", 0) in metrics
    assert not any(m.name.startswith("Exchange") or m.name.startswith("RunGuard") for m in metrics)


def test_a_busy_or_troubled_guard_shows_in_the_metrics() -> None:
    busy = Summary(due=1, guard=Hold(state=GuardState.BUSY)).metrics()
    taken = Summary(guard=Hold(state=GuardState.TAKEN_OVER, took_over=Verdict.MALFORMED)).metrics()
    lapsed = Summary(guard=Hold(state=GuardState.ACQUIRED, took_over=Verdict.LAPSED)).metrics()
    down = Summary(guard=Hold(state=GuardState.UNAVAILABLE)).metrics()

    assert Metric("RotationBlocked", 1) in busy
    assert Metric("RunGuardProblem", reason="taken_over_malformed") in taken
    assert Metric("RunGuardLapsed") in lapsed and not any(m.name == "RunGuardProblem" for m in lapsed)
    assert Metric("RunGuardProblem", reason="unavailable") in down
    assert not any(m.name == "RotationBlocked" for m in Summary().metrics())  # no work: no sample for the alarm


def test_an_exchange_summary_lists_its_metrics() -> None:
    run = Summary(due=2, outcomes=[Outcome("a", PairResult.EXCHANGED), Outcome("b", PairResult.NOT_ATTEMPTED, "x")])
    metrics = ExchangeSummary(run=run, stopped="token_rotation_not_enabled").metrics()
    dry = ExchangeSummary(run=Summary(outcomes=[Outcome("a", PairResult.WOULD_EXCHANGE)]), dry_run=True).metrics()

    assert Metric("Exchanged", 1) in metrics and Metric("ExchangeDue", 2) in metrics
    assert Metric("ExchangeStopped", reason="token_rotation_not_enabled") in metrics
    assert not any(m.name.startswith("Rotation") for m in metrics)
    assert dry == [Metric("ExchangeWouldExchange", 1)]
