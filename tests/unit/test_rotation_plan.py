"""Pure rotation decisions: which pairs are due, in which order, decided from listing metadata alone."""

from __future__ import annotations

from slack_tokens.models import Status, new_version_id
from slack_tokens.rotation import is_due, plan, spread
from slack_tokens.store import SecretMeta

P = "slack/tokens/"
NOW = 1_800_000_000
MARGIN = 7200


def meta(name: str, current: str, pending: str | None = None, *, deleted: bool = False) -> SecretMeta:
    versions = {current: ["AWSCURRENT"]}
    if pending is not None:
        versions[pending] = ["AWSPENDING"]
    return SecretMeta(name=P + name, arn="", versions=versions, deleted=deleted)


def test_spread_is_stable_and_below_half_the_margin() -> None:
    offsets = {spread(f"{P}team/T{i}/bot", MARGIN) for i in range(500)}

    assert spread(f"{P}team/T1/bot", MARGIN) == spread(f"{P}team/T1/bot", MARGIN)
    assert all(0 <= o < MARGIN // 2 for o in offsets)
    assert len(offsets) > 400  # pairs installed together fall due at different times


def test_due_means_within_the_margin_plus_the_pairs_spread() -> None:
    name = f"{P}team/T1/bot"
    edge = NOW + MARGIN + spread(name, MARGIN)

    assert is_due(edge, NOW, MARGIN, name)
    assert not is_due(edge + 1, NOW, MARGIN, name)


def test_plan_takes_due_and_unknown_pairs_most_urgent_first_and_skips_the_rest() -> None:
    soon = new_version_id(Status.ACTIVE, NOW + 600)
    sooner = new_version_id(Status.ACTIVE, NOW + 60)
    later = new_version_id(Status.ACTIVE, NOW + 40_000)
    legacy = new_version_id(Status.ACTIVE, None)
    broken = new_version_id(Status.NEEDS_REINSTALL, NOW)
    hand_edited = "3f2a0b1c-0000-4000-8000-000000000000"
    metas = [
        meta("team/T1/bot", soon),
        meta("team/T2/bot", later),
        meta("team/T3/bot", legacy),
        meta("team/T4/bot", broken),
        meta("team/T5/bot", sooner),
        meta("team/T6/bot", hand_edited),
        meta("team/T7/bot", sooner, deleted=True),
        meta("_lease/rotation", "abc"),
    ]

    names = [c.name for c in plan(metas, P, NOW, MARGIN)]

    assert names == [P + "team/T6/bot", P + "team/T5/bot", P + "team/T1/bot"]


def test_an_unpromoted_rotation_is_planned_even_when_not_due() -> None:
    current = new_version_id(Status.ACTIVE, NOW + 40_000)
    pending = new_version_id(Status.ACTIVE, NOW + 43_000)

    (candidate,) = plan([meta("team/T1/bot", current, pending)], P, NOW, MARGIN)

    assert candidate.unpromoted == pending


def test_a_pending_version_older_than_current_is_a_leftover_and_not_read() -> None:
    current = new_version_id(Status.ACTIVE, NOW + 40_000)  # e.g. a reinstall after that rotation
    leftover = new_version_id(Status.ACTIVE, NOW + 30_000)

    assert plan([meta("team/T1/bot", current, leftover)], P, NOW, MARGIN) == []


def test_a_pending_version_whose_id_says_no_expiry_is_read_even_when_the_pair_is_not_due() -> None:
    """Only a version id with an expiry can show a pending pair is a leftover; any other may be the one pair Slack
    answered with, stored but never promoted."""
    current = new_version_id(Status.ACTIVE, NOW + 40_000)
    for pending in ("3f2a0b1c-0000-4000-8000-000000000000", new_version_id(Status.ACTIVE, None)):
        (candidate,) = plan([meta("team/T1/bot", current, pending)], P, NOW, MARGIN)

        assert candidate.unpromoted == pending
