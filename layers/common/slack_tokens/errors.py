"""The project's error family.

Every failure the package can meet is one of these types. Boundary modules (``slack_client`` for Slack,
``store`` for Secrets Manager) translate what the outside world raises into them, so the logic above never
sees a botocore ``ClientError`` or a raw Slack JSON body. Handlers turn them into pages or logged outcomes
in one place.

Messages never contain a token, a code, a client secret or a state value.
"""

from __future__ import annotations

from enum import StrEnum


class SlackTokensError(Exception):
    """Base class of every error raised on purpose by this package."""


class ConfigError(SlackTokensError):
    """The function's configuration is missing or invalid (environment or app credentials secret)."""


# --------------------------------------------------------------------------------------------------------------
# Secrets Manager
# --------------------------------------------------------------------------------------------------------------


class StoreError(SlackTokensError):
    """A Secrets Manager call failed.

    ``retryable`` is true for throttling, internal errors and connection problems: the same call may succeed
    if repeated (writes are idempotent thanks to their ``ClientRequestToken``).
    """

    def __init__(self, message: str, *, code: str = "", retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class SecretNotFoundError(StoreError):
    """The secret does not exist (or is scheduled for deletion)."""


class VersionConflictError(StoreError):
    """A compare-and-swap lost: the version we expected to replace is no longer current."""


class CorruptSecretError(StoreError):
    """The secret exists but its value is not a token pair this package wrote."""


class GuardLostError(SlackTokensError):
    """This run no longer holds the run guard (another run took over): it must not start a refresh or exchange."""


# --------------------------------------------------------------------------------------------------------------
# OAuth state
# --------------------------------------------------------------------------------------------------------------


class StateError(SlackTokensError):
    """The ``state`` / cookie pair of a callback does not prove the browser started this install."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# --------------------------------------------------------------------------------------------------------------
# Slack Web API
# --------------------------------------------------------------------------------------------------------------


class Category(StrEnum):
    """What kind of failure a Slack error is, which decides what the caller does next."""

    RETRYABLE = "retryable"  # Slack is busy or broken: try again later, nothing is wrong with the request
    AUTH = "auth"  # the token used is not (or no longer) valid
    PERMISSION = "permission"  # the token/user/workspace is not allowed to do this
    REQUEST = "request"  # our request is malformed: a bug in this package, report it
    CONFIG = "config"  # the Slack app settings or credentials do not match this deployment
    GRANT = "grant"  # the code / refresh token / legacy token presented was rejected
    UNKNOWN = "unknown"  # an error code Slack did not document (treated as not retryable)


class SlackApiError(SlackTokensError):
    """Slack answered with an error. ``code`` is Slack's error string (or a transport pseudo-code)."""

    category: Category = Category.UNKNOWN

    def __init__(
        self,
        code: str,
        message: str,
        *,
        method: str = "",
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{method or 'slack'}: {code}: {message}")
        self.code = code
        self.method = method
        self.http_status = http_status
        self.retry_after = retry_after
        # Set by the client when an earlier attempt of the same call may have been acted on by Slack (its answer
        # was lost): a refresh token presented then is in its grace period, even if this error says "not done".
        self.maybe_acted = False

    @property
    def retryable(self) -> bool:
        return self.category is Category.RETRYABLE


class SlackRetryableError(SlackApiError):
    category = Category.RETRYABLE


class SlackAuthError(SlackApiError):
    category = Category.AUTH


class SlackPermissionError(SlackApiError):
    category = Category.PERMISSION


class SlackRequestError(SlackApiError):
    category = Category.REQUEST


class SlackConfigError(SlackApiError):
    category = Category.CONFIG


class SlackGrantError(SlackApiError):
    category = Category.GRANT


class SlackUnknownError(SlackApiError):
    category = Category.UNKNOWN


class InvalidCodeError(SlackGrantError):
    """The authorization code is unknown, used or expired (codes live 10 minutes and are single-use)."""


class InvalidRefreshTokenError(SlackGrantError):
    """The refresh token was used already (past its grace period) or revoked."""


class TokenAlreadyExchangedError(SlackGrantError):
    """``oauth.v2.exchange`` was already done for this legacy token."""


class TokenRotationNotEnabledError(SlackConfigError):
    """The Slack app does not have token rotation turned on."""


class SlackTransportError(SlackRetryableError):
    """No usable answer came back (connection refused, timeout, reset, non-JSON body from a proxy...).

    ``request_sent`` tells whether Slack may have acted on the request: false for failures before the request
    left (connect errors), true when the answer was lost after sending (read timeout, connection reset).
    """

    def __init__(
        self, code: str, message: str, *, method: str = "", request_sent: bool, http_status: int | None = None
    ) -> None:
        super().__init__(code, message, method=method, http_status=http_status)
        self.request_sent = request_sent


# Slack's documented error codes for the methods this package calls, with a message an operator can act on.
# Source: docs.slack.dev pages of oauth.v2.access and oauth.v2.exchange plus the errors common to every method.
_ERRORS: dict[str, tuple[type[SlackApiError], str]] = {
    # oauth.v2.access
    "bad_client_secret": (SlackConfigError, "the client secret does not match the app's client id"),
    "bad_redirect_uri": (SlackConfigError, "redirect_uri does not match the one sent to authorize or the app's list"),
    "cannot_install_an_org_installed_app": (
        SlackPermissionError,
        "the app is already installed org-wide; it cannot be installed on one workspace",
    ),
    "invalid_client_id": (SlackConfigError, "the client id is not a valid Slack app client id"),
    "invalid_code": (InvalidCodeError, "the authorization code is unknown, already used or expired"),
    "invalid_code_verifier": (SlackGrantError, "the PKCE code verifier does not match the code challenge"),
    "invalid_grant_type": (SlackRequestError, "grant_type is not one Slack accepts"),
    "invalid_refresh_token": (InvalidRefreshTokenError, "the refresh token was already used or has been revoked"),
    "no_scopes": (SlackConfigError, "no scopes were requested; set bot and/or user scopes"),
    "oauth_authorization_url_mismatch": (
        SlackConfigError,
        "the install started on a different authorize URL version (v1 vs v2)",
    ),
    "pkce_not_allowed": (SlackConfigError, "PKCE is not enabled for this Slack app"),
    "preview_feature_not_available": (SlackConfigError, "the app uses a preview feature not available to it"),
    "user_email_unverified": (SlackPermissionError, "the installing user must verify their email address first"),
    # oauth.v2.exchange
    "authorization_not_found": (SlackGrantError, "no installation was found for that legacy token"),
    "invalid_token": (SlackGrantError, "the legacy token is not valid"),
    "token_already_exchanged": (TokenAlreadyExchangedError, "the legacy token was already exchanged"),
    "token_rotation_not_enabled": (
        TokenRotationNotEnabledError,
        "token rotation is off for this Slack app; turn it on under OAuth & Permissions (it cannot be turned off)",
    ),
    # common to every method: retryable
    "ratelimited": (SlackRetryableError, "Slack rate-limited the request"),
    "internal_error": (SlackRetryableError, "Slack reported an internal error"),
    "fatal_error": (SlackRetryableError, "Slack reported a fatal error (usually transient)"),
    "service_unavailable": (SlackRetryableError, "Slack is temporarily unavailable"),
    "request_timeout": (SlackRetryableError, "Slack timed out processing the request"),
    # common: auth
    "invalid_auth": (SlackAuthError, "the token is invalid"),
    "not_authed": (SlackAuthError, "no token was provided"),
    "token_expired": (SlackAuthError, "the access token has expired"),
    "token_revoked": (SlackAuthError, "the token has been revoked"),
    "account_inactive": (SlackAuthError, "the token's user or workspace is deactivated"),
    "org_login_required": (SlackAuthError, "the workspace is migrating to an Enterprise org; retry later"),
    "team_added_to_org": (SlackAuthError, "the workspace joined an Enterprise org; reinstall to get new tokens"),
    # common: permission
    "missing_scope": (SlackPermissionError, "the token lacks a required scope"),
    "no_permission": (SlackPermissionError, "the workspace token lacks permission for this"),
    "not_allowed_token_type": (SlackPermissionError, "this token type is not allowed for the method"),
    "access_denied": (SlackPermissionError, "access to the resource was denied"),
    "accesslimited": (SlackPermissionError, "the method cannot be used with this workspace's limits"),
    "ekm_access_denied": (SlackPermissionError, "administrators suspended access via Enterprise Key Management"),
    "enterprise_is_restricted": (SlackPermissionError, "the method is restricted in this Enterprise org"),
    "team_access_not_granted": (SlackPermissionError, "the token has not been granted access to this workspace"),
    "two_factor_setup_required": (SlackPermissionError, "two-factor authentication must be set up"),
    # common: request bugs
    "invalid_arguments": (SlackRequestError, "the request's arguments are invalid"),
    "invalid_arg_name": (SlackRequestError, "an argument name is invalid"),
    "invalid_array_arg": (SlackRequestError, "an array argument was sent in an invalid form"),
    "invalid_charset": (SlackRequestError, "the request charset is invalid"),
    "invalid_form_data": (SlackRequestError, "the form body is invalid"),
    "invalid_post_type": (SlackRequestError, "the Content-Type is not one Slack accepts"),
    "missing_post_type": (SlackRequestError, "the request has no Content-Type"),
    "deprecated_endpoint": (SlackRequestError, "the endpoint is deprecated"),
    "method_deprecated": (SlackRequestError, "the method is deprecated"),
    "invalid_json": (SlackRequestError, "the JSON body is invalid"),
    "json_not_object": (SlackRequestError, "the JSON body is not an object"),
}

DOCUMENTED_ERROR_CODES: frozenset[str] = frozenset(_ERRORS)


def error_for(
    code: str,
    *,
    method: str = "",
    http_status: int | None = None,
    retry_after: float | None = None,
) -> SlackApiError:
    """Build the typed error for a Slack error code; undocumented codes become ``SlackUnknownError``."""
    error_type, message = _ERRORS.get(code, (SlackUnknownError, "Slack returned an undocumented error"))
    return error_type(code, message, method=method, http_status=http_status, retry_after=retry_after)
