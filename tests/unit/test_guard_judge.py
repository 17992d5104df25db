"""What a run makes of the guard item it reads (``guard.judge``): pure, over values and a clock."""

from __future__ import annotations

import pytest

from slack_tokens.guard import CLOCK_SKEW, LONGEST_RUN, MAX_TTL, Claim, Verdict, judge

NOW = 1_800_000_000.0


def claim(owner: str | None = "other", *, acquired: float | None = NOW - 10, expires: float | None = NOW + 10,
          rev: str | None = "r") -> Claim:  # fmt: skip
    return Claim(owner=owner, holder="RotateFunction/x", acquired_at=acquired, expires_at=expires, rev=rev)


@pytest.mark.parametrize(
    ("seen", "verdict"),
    [
        (None, Verdict.FREE),
        (claim(""), Verdict.FREE),
        (claim("me"), Verdict.MINE),
        (claim(), Verdict.HELD),
        (claim(expires=NOW), Verdict.LAPSED),  # the claim ends at expires_at, exclusive
        (claim(expires=NOW - 1), Verdict.LAPSED),
        (claim(expires=NOW + MAX_TTL + CLOCK_SKEW), Verdict.HELD),  # the furthest a holder ever sets, plus skew
        (claim(expires=NOW + MAX_TTL + CLOCK_SKEW + 1), Verdict.IMPLAUSIBLE),
        (claim(acquired=NOW - LONGEST_RUN), Verdict.HELD),
        (claim(acquired=NOW - LONGEST_RUN - 1), Verdict.OVERDUE),
        (claim(None), Verdict.MALFORMED),
        (claim(expires=None), Verdict.MALFORMED),
        (claim(acquired=None), Verdict.MALFORMED),
        (claim(rev=None), Verdict.MALFORMED),
    ],
)
def test_judge(seen: Claim | None, verdict: Verdict) -> None:
    assert judge(seen, "me", NOW) is verdict


def test_only_a_live_looking_claim_keeps_a_run_out_and_only_impossible_ones_are_loud() -> None:
    assert [v for v in Verdict if not v.takeable] == [Verdict.HELD]
    assert {v for v in Verdict if v.loud} == {Verdict.IMPLAUSIBLE, Verdict.OVERDUE, Verdict.MALFORMED}


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"owner": {"S": "a"}, "expires_at": {"N": "12.5"}}, ("a", 12.5)),
        ({"owner": {"N": "1"}, "expires_at": {"S": "12"}}, (None, None)),
        ({"owner": {"S": "a"}, "expires_at": {"N": "nan"}}, ("a", None)),
        ({"owner": {"S": "a"}, "expires_at": {"N": "inf"}}, ("a", None)),
        ({}, (None, None)),
    ],
)
def test_a_claim_keeps_only_values_of_the_types_it_writes(item: dict, expected: tuple) -> None:
    parsed = Claim.from_item(item)
    assert (parsed.owner, parsed.expires_at) == expected
