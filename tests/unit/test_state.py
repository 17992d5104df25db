"""Signed, expiring, cookie-bound state and PKCE."""

from __future__ import annotations

import pytest

from slack_tokens.errors import StateError
from slack_tokens.state import StateSigner, pkce_challenge

KEY = "k" * 64
NOW = 1_800_000_000


@pytest.fixture
def signer() -> StateSigner:
    return StateSigner(KEY)


def reason(signer: StateSigner, state: str | None, nonce: str | None, now: int = NOW) -> str:
    with pytest.raises(StateError) as caught:
        signer.verify(state, nonce, now)
    return caught.value.reason


def test_a_fresh_state_verifies_with_its_cookie(signer: StateSigner) -> None:
    issued = signer.issue(NOW, pkce=False)

    signer.verify(issued.state, issued.nonce, NOW + 599)
    assert issued.code_challenge is None
    assert issued.nonce not in issued.state  # the URL never carries the cookie's value


def test_each_state_is_unique(signer: StateSigner) -> None:
    assert signer.issue(NOW, pkce=False).state != signer.issue(NOW, pkce=False).state


def test_expired_state_is_refused(signer: StateSigner) -> None:
    issued = signer.issue(NOW, pkce=False)
    assert reason(signer, issued.state, issued.nonce, NOW + 601) == "expired_state"


def test_state_from_the_future_is_refused(signer: StateSigner) -> None:
    issued = signer.issue(NOW + 3600, pkce=False)
    assert reason(signer, issued.state, issued.nonce, NOW) == "expired_state"


def test_another_browsers_cookie_is_refused(signer: StateSigner) -> None:
    mine, theirs = signer.issue(NOW, pkce=False), signer.issue(NOW, pkce=False)
    assert reason(signer, mine.state, theirs.nonce) == "cookie_mismatch"


def test_state_signed_with_another_key_is_refused(signer: StateSigner) -> None:
    forged = StateSigner("z" * 64).issue(NOW, pkce=False)
    assert reason(signer, forged.state, forged.nonce) == "invalid_state"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s: s.replace(s.split(".")[0], str(int(s.split(".")[0]) + 1), 1),
        lambda s: s[:-2] + ("AA" if not s.endswith("AA") else "BB"),
        lambda s: s + ".x",
        lambda s: "abc.def.ghi",
        lambda s: "é" + s,
        lambda s: s * 10,
    ],
)
def test_tampered_state_is_refused(signer: StateSigner, tamper) -> None:  # type: ignore[no-untyped-def]
    issued = signer.issue(NOW, pkce=False)
    assert reason(signer, tamper(issued.state), issued.nonce) in {"invalid_state", "expired_state"}


def test_missing_parts_are_named(signer: StateSigner) -> None:
    issued = signer.issue(NOW, pkce=False)
    assert reason(signer, None, issued.nonce) == "missing_state"
    assert reason(signer, issued.state, None) == "missing_cookie"
    assert reason(signer, issued.state, "") == "missing_cookie"


def test_pkce_challenge_matches_rfc7636_appendix_b() -> None:
    assert (
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_pkce_verifier_is_bound_to_the_cookie(signer: StateSigner) -> None:
    issued = signer.issue(NOW, pkce=True)
    verifier = signer.pkce_verifier(issued.nonce)

    assert 43 <= len(verifier) <= 128
    assert issued.code_challenge == pkce_challenge(verifier)
    assert signer.pkce_verifier("another-nonce") != verifier


def test_short_keys_are_refused_and_repr_hides_the_key() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        StateSigner("short")
    assert KEY not in repr(StateSigner(KEY))
