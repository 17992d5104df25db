"""What an install start or a callback reports: each result lists its own metrics, named by route and outcome."""

from __future__ import annotations

import pytest

from slack_tokens import http, oauth_flow
from slack_tokens.oauth_flow import InstallOutcome, Result, Route
from slack_tokens.observability import Metric
from slack_tokens.state import StateRefusal

PAGE = http.html(200, "")


@pytest.mark.parametrize(
    ("route", "outcome", "metric"),
    [
        (Route.INSTALL, InstallOutcome.STARTED, Metric("InstallStarted", reason="started")),
        (Route.INSTALL, InstallOutcome.CONFIG, Metric("InstallFailed", reason="config")),
        (Route.INSTALL, InstallOutcome.BAD_REQUEST, Metric("InstallFailed", reason="bad_request")),
        (Route.CALLBACK, InstallOutcome.INSTALLED, Metric("InstallSucceeded", reason="installed")),
        (Route.CALLBACK, InstallOutcome.CANCELLED, Metric("InstallFailed", reason="cancelled")),
        (Route.CALLBACK, InstallOutcome.STORAGE_FAILED, Metric("InstallFailed", reason="storage_failed")),
        (Route.CALLBACK, InstallOutcome.STARTED, Metric("InstallFailed", reason="started")),  # not a callback's success
    ],
)
def test_a_result_lists_its_metric(route: Route, outcome: InstallOutcome, metric: Metric) -> None:
    result = Result(route, PAGE, outcome)

    assert result.metrics() == [metric]
    assert result.ok == (metric.name != "InstallFailed")
    assert type(result.metrics()[0].reason) is str  # the plain value goes into the metric's dimension


def test_every_state_refusal_is_a_callback_outcome() -> None:
    assert {InstallOutcome(refusal).value for refusal in StateRefusal} == {refusal.value for refusal in StateRefusal}


def test_the_module_docs_list_every_outcome() -> None:
    documented = oauth_flow.__doc__ or ""
    assert [o.value for o in InstallOutcome if f"``{o.value}``" not in documented] == []
