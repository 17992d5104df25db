"""OAuth ``state`` and PKCE: proof that the browser finishing an install is the one that started it.

Install: a random *browser nonce* goes into an ``HttpOnly; Secure; SameSite=Lax`` cookie. The ``state`` sent to
Slack is ``<issued_at>.<nonce digest>.<HMAC-SHA256>``: it names the nonce only through a hash (so the URL, which
may end up in logs or a Referer, never carries the cookie's value) and is signed with a key kept in Secrets
Manager. Callback: the signature, the age (10 minutes) and the digest of the cookie's nonce must all match;
comparisons are constant-time.

PKCE (opt-in): the verifier is derived from the nonce with the same key (``HMAC(key, "pkce" + nonce)``), so
nothing extra needs storing: only the browser that holds the cookie can make the callback present the right
verifier.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from slack_tokens.errors import StateError

STATE_TTL_SECONDS = 600
CLOCK_SKEW_SECONDS = 60
COOKIE_NAME = "slack_oauth_state"
_MAX_STATE_LENGTH = 200
_MAX_NONCE_LENGTH = 100


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(slots=True, eq=False)
class InstallState:
    state: str
    nonce: str = field(repr=False)  # the cookie's value
    code_challenge: str | None = None


class StateSigner:
    """Issues and checks state values. ``key`` comes from the state key secret."""

    def __init__(self, key: str | bytes, *, ttl_seconds: int = STATE_TTL_SECONDS) -> None:
        raw = key.encode("utf-8") if isinstance(key, str) else key
        if len(raw) < 32:
            raise ValueError("the state key must be at least 32 bytes")
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

    def verify(self, state: str | None, nonce: str | None, now: int) -> None:
        """Raise ``StateError`` (with a reason) unless ``state`` was issued for ``nonce`` in the last 10 minutes."""
        if not state:
            raise StateError("missing_state", "the callback carries no state parameter")
        if not nonce:
            raise StateError("missing_cookie", "the browser did not send the install cookie")
        if len(state) > _MAX_STATE_LENGTH or len(nonce) > _MAX_NONCE_LENGTH or not state.isascii():
            raise StateError("invalid_state", "the state parameter is malformed")
        parts = state.split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            raise StateError("invalid_state", "the state parameter is malformed")
        issued_at, digest, signature = int(parts[0]), parts[1], parts[2]
        if not hmac.compare_digest(self._sign(f"{parts[0]}.{digest}"), signature):
            raise StateError("invalid_state", "the state signature does not verify")
        if now - issued_at > self._ttl or issued_at - now > CLOCK_SKEW_SECONDS:
            raise StateError("expired_state", "the install link has expired")
        if not hmac.compare_digest(self._digest(nonce), digest):
            raise StateError("cookie_mismatch", "the state was issued to a different browser")

    def pkce_verifier(self, nonce: str) -> str:
        """A 43-character RFC 7636 verifier bound to the browser nonce."""
        return _b64(hmac.new(self._key, b"pkce." + nonce.encode("utf-8"), hashlib.sha256).digest())

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, b"state." + payload.encode("ascii"), hashlib.sha256).digest())

    def _digest(self, nonce: str) -> str:
        return _b64(hashlib.sha256(nonce.encode("utf-8")).digest()[:18])


def pkce_challenge(verifier: str) -> str:
    """S256 code challenge (RFC 7636 section 4.2)."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())
