"""Every error code Slack documents for the methods we call maps to a typed error with a category and message."""

from __future__ import annotations

import pytest

from slack_tokens import errors

RETRYABLE = ["ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"]
AUTH = [
    "invalid_auth",
    "not_authed",
    "token_expired",
    "token_revoked",
    "account_inactive",
    "org_login_required",
    "team_added_to_org",
]
PERMISSION = [
    "missing_scope",
    "no_permission",
    "not_allowed_token_type",
    "access_denied",
    "accesslimited",
    "ekm_access_denied",
    "enterprise_is_restricted",
    "team_access_not_granted",
    "two_factor_setup_required",
    "cannot_install_an_org_installed_app",
    "user_email_unverified",
]
REQUEST = [
    "invalid_arguments",
    "invalid_arg_name",
    "invalid_array_arg",
    "invalid_charset",
    "invalid_form_data",
    "invalid_post_type",
    "missing_post_type",
    "deprecated_endpoint",
    "method_deprecated",
    "invalid_json",
    "json_not_object",
    "invalid_grant_type",
]
CONFIG = [
    "bad_client_secret",
    "bad_redirect_uri",
    "invalid_client_id",
    "no_scopes",
    "oauth_authorization_url_mismatch",
    "pkce_not_allowed",
    "preview_feature_not_available",
    "token_rotation_not_enabled",
]
GRANT = [
    "invalid_code",
    "invalid_code_verifier",
    "invalid_refresh_token",
    "authorization_not_found",
    "invalid_token",
    "token_already_exchanged",
]

EXPECTED = (
    [(c, errors.Category.RETRYABLE) for c in RETRYABLE]
    + [(c, errors.Category.AUTH) for c in AUTH]
    + [(c, errors.Category.PERMISSION) for c in PERMISSION]
    + [(c, errors.Category.REQUEST) for c in REQUEST]
    + [(c, errors.Category.CONFIG) for c in CONFIG]
    + [(c, errors.Category.GRANT) for c in GRANT]
)


def test_the_table_covers_exactly_the_documented_codes() -> None:
    assert {code for code, _ in EXPECTED} == errors.DOCUMENTED_ERROR_CODES
    assert len(EXPECTED) == len(errors.DOCUMENTED_ERROR_CODES)


@pytest.mark.parametrize(("code", "category"), EXPECTED)
def test_each_code_maps_to_its_category(code: str, category: errors.Category) -> None:
    error = errors.error_for(code, method="oauth.v2.access", http_status=200)

    assert error.category is category
    assert error.code == code
    assert error.retryable is (category is errors.Category.RETRYABLE)
    assert code in str(error) and "oauth.v2.access" in str(error)
    assert len(str(error)) > len(code) + 20  # a real message, not just the code


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        ("invalid_code", errors.InvalidCodeError),
        ("invalid_refresh_token", errors.InvalidRefreshTokenError),
        ("token_already_exchanged", errors.TokenAlreadyExchangedError),
        ("token_rotation_not_enabled", errors.TokenRotationNotEnabledError),
    ],
)
def test_codes_the_logic_branches_on_have_their_own_type(code: str, error_type: type[errors.SlackApiError]) -> None:
    assert type(errors.error_for(code)) is error_type


def test_unknown_codes_still_carry_the_code() -> None:
    error = errors.error_for("brand_new_error")

    assert isinstance(error, errors.SlackUnknownError)
    assert error.code == "brand_new_error"
    assert not error.retryable


def test_rate_limit_keeps_retry_after() -> None:
    assert errors.error_for("ratelimited", retry_after=7.0).retry_after == 7.0
