"""OAuth ``state`` and PKCE: proof that the browser finishing an install is the one that started it.

Install: a random *browser nonce* goes into an ``HttpOnly; Secure; SameSite=Lax`` cookie named with the
``__Host-`` prefix (the browser keeps it only with ``Secure``, ``Path=/`` and no ``Domain``, so a sibling subdomain or
plain http cannot plant one that shadows it). The ``state`` sent to
Slack is ``<issued_at>.<nonce digest>.<HMAC-SHA256>``: it names the nonce only through a hash (so the URL, which
may end up in logs or a Referer, never carries the cookie's value) and is signed with a key kept in Secrets
Manager. Callback: the signature, the age (10 minutes) and the digest of the cookie's nonce must all match;
comparisons are constant-time. When the browser sends several cookies of that name (one planted ahead of the
genuine one), any one that verifies is accepted. Anything malformed (not the shape ``issue`` makes: non-ASCII, lone
surrogates, wrong length) is refused as such before any hashing, so it can never raise anything but ``StateError``.

PKCE (opt-in): the verifier is derived from the nonce with the same key (``HMAC(key, "pkce" + nonce)``), so
nothing extra needs storing: only the browser that holds the cookie can make the callback present the right
verifier.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from slack_tokens.errors import StateError

STATE_TTL_SECONDS = 600
CLOCK_SKEW_SECONDS = 60
COOKIE_NAME = "__Host-slack_oauth_state"
# What ``issue`` makes: a 43-character nonce; state = seconds . 24-character digest . 43-character signature.
_NONCE = re.compile(r"[A-Za-z0-9_-]{43}")
_STATE = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{24})\.([A-Za-z0-9_-]{43})")
MAX_COOKIES = 5  # state cookies looked at per callback; a browser sends one, a planted one makes two


class StateRefusal(StrEnum):
    """Why ``verify`` refused a callback's state: the ``reason`` of its ``StateError`` (and the callback's outcome)."""

    MISSING_STATE = "missing_state"  # no state parameter
    MISSING_COOKIE = "missing_cookie"  # no install cookie of the right shape
    INVALID_STATE = "invalid_state"  # malformed, or the signature does not verify
    EXPIRED_STATE = "expired_state"  # older than the TTL (or from the future beyond the allowed skew)
    COOKIE_MISMATCH = "cookie_mismatch"  # issued to another browser: none of the cookies' nonces matches


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(slots=True, eq=False)
class InstallState:
    state: str
    nonce: str = field(repr=False)  # the cookie's value
    code_challenge: str | None = None


MIN_KEY_BYTES = 32  # the state key secret's shortest accepted value (HMAC-SHA256: a key as long as the digest)


class StateSigner:
    """Issues and checks state values. ``key`` comes from the state key secret."""

    def __init__(self, key: str | bytes, *, ttl_seconds: int = STATE_TTL_SECONDS) -> None:
        raw = key.encode("utf-8") if isinstance(key, str) else key
        if len(raw) < MIN_KEY_BYTES:
            raise ValueError(f"the state key must be at least {MIN_KEY_BYTES} bytes")
        self._key = raw
        self._ttl = ttl_seconds

    def __repr__(self) -> str:
        return "StateSigner(key=<hidden>)"

    def issue(self, now: int, *, pkce: bool) -> InstallState:
        nonce = secrets.token_urlsafe(32)
        payload = f"{now}.{self._digest(nonce)}"
        state = f"{payload}.{self._sign(payload)}"
        challenge = pkce_challenge(self.pkce_verifier(nonce)) if pkce else None
        return InstallState(state=state, nonce=nonce, code_challenge=challenge)

    def verify(self, state: str | None, nonces: str | Sequence[str] | None, now: int) -> str:
        """The nonce (one of ``nonces``, the cookies' values) that ``state`` was issued for in the last 10 minutes;
        ``StateError`` (its ``reason`` a ``StateRefusal``) when there is none."""
        if not state:
            raise StateError(StateRefusal.MISSING_STATE, "the callback carries no state parameter")
        candidates = [nonces] if isinstance(nonces, str) else list(nonces or [])[:MAX_COOKIES]
        usable = [n for n in candidates if isinstance(n, str) and _NONCE.fullmatch(n)]
        if not usable:
            raise StateError(StateRefusal.MISSING_COOKIE, "the browser did not send the install cookie")
        parts = _STATE.fullmatch(state) if isinstance(state, str) else None
        if parts is None:
            raise StateError(StateRefusal.INVALID_STATE, "the state parameter is malformed")
        issued_at, digest, signature = int(parts[1]), parts[2], parts[3]
        if not hmac.compare_digest(self._sign(f"{parts[1]}.{digest}"), signature):
            raise StateError(StateRefusal.INVALID_STATE, "the state signature does not verify")
        if now - issued_at > self._ttl or issued_at - now > CLOCK_SKEW_SECONDS:
            raise StateError(StateRefusal.EXPIRED_STATE, "the install link has expired")
        for nonce in usable:
            if hmac.compare_digest(self._digest(nonce), digest):
                return nonce
        raise StateError(StateRefusal.COOKIE_MISMATCH, "the state was issued to a different browser")

    def expires_at(self, state: str) -> int:
        """When a state that ``verify`` accepted stops being accepted anyway (Unix seconds)."""
        return int(state.split(".", 1)[0]) + self._ttl + CLOCK_SKEW_SECONDS

    def pkce_verifier(self, nonce: str) -> str:
        """A 43-character RFC 7636 verifier bound to the browser nonce."""
        return _b64(hmac.new(self._key, b"pkce." + nonce.encode("utf-8"), hashlib.sha256).digest())

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, b"state." + payload.encode("ascii"), hashlib.sha256).digest())

    def _digest(self, nonce: str) -> str:
        return _b64(hashlib.sha256(nonce.encode("utf-8")).digest()[:18])


def state_id(state: str) -> str:
    """The name a verified state is spent under (its hash: the ledger of spent states holds no usable value)."""
    return hashlib.sha256(state.encode("ascii")).hexdigest()[:32]


def pkce_challenge(verifier: str) -> str:
    """S256 code challenge (RFC 7636 section 4.2)."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())
