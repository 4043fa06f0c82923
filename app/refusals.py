"""What each refusal means over HTTP: its status and its message, zh-TW and English, written once.

Services raise :class:`~app.services.refusals.Refusal` (a code and its facts); the views and the error
handler ask :func:`answer` for the status, the translated message and the JSON body. The JSON API answers
``{"error": code, "message": text, ...}`` with the fields an entry lists in ``shown``; a page shows the
message in its own layout. A code missing here is a bug, and ``tests/app/test_refusals.py`` fails on it.

Entries are keyed ``code`` or ``(code, case)``; ``(None, case)`` is the answer for a code of that family
the table does not list (a WebAuthn or card reason added in a later release).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import jsonify
from flask_babel import gettext

from .services.refusals import Refusal


def N_(text: str) -> str:
    """Marks a message for extraction (``pybabel extract`` knows ``N_``); it is translated when shown."""
    return text


@dataclass(frozen=True)
class Answer:
    status: int
    message: str  # the English msgid, ``%(name)s`` placeholders filled from the refusal's params
    shown: tuple[str, ...] = ()  # params the JSON body carries beside error and message


Key = str | tuple[str | None, str | None]

ANSWERS: dict[Key, Answer] = {
    # -- the door: bodies and requests ------------------------------------------------------------------
    "malformed_input": Answer(400, N_("The request body must be a JSON object.")),
    # -- sessions and staff ------------------------------------------------------------------------------
    "login_required": Answer(401, N_("Please log in first.")),
    ("invalid_token", "service_token"): Answer(401, N_("The service token is unknown, revoked or expired.")),
    "forbidden": Answer(403, N_("You are not allowed to do this."), shown=("scope",)),
    ("forbidden", "staff"): Answer(403, N_("This page is for administrators.")),
    "reason_required": Answer(400, N_("Please give a reason.")),
    "reason_too_long": Answer(400, N_("The reason can be at most %(max)d characters.")),
    # -- card login ----------------------------------------------------------------------------------------
    # -- registration, email and contact -----------------------------------------------------------------
    # -- devices and binding --------------------------------------------------------------------------------
    # -- phone login -------------------------------------------------------------------------------------------
    # -- administration --------------------------------------------------------------------------------------
    "one_criterion": Answer(400, N_("Search by one of: national ID, email, mobile number or name.")),
    **{(f"invalid_{kind}", "search_criterion"): Answer(
        400, N_("Search by one of: national ID, email, mobile number or name."))
       for kind in ("national_id", "email", "phone", "name")},
    ("invalid_national_id", "search"): Answer(400, N_("The national ID number is not valid.")),
    **{(f"invalid_{field}", "search"): Answer(400, N_("The email address or mobile number is not valid."))
       for field in ("email", "phone")},
    "account_unknown": Answer(404, N_("There is no such account.")),
    "device_unknown": Answer(404, N_("There is no such device.")),
    "own_device": Answer(403, N_("Manage your own devices from your account page.")),
    "own_account": Answer(403, N_("Administrators cannot change their own account here.")),
    ("account_locked", "already_locked"): Answer(409, N_("This account is already locked.")),
    "account_not_locked": Answer(409, N_("This account is not locked.")),
    "invalid_role": Answer(400, N_("The role is admin, auditor, or none.")),
    ("invalid_name", "service_token"): Answer(400, N_("Give the token a name of at most 80 characters.")),
    ("invalid_scopes", "service_token"): Answer(400, N_("Scopes are among: %(scopes)s.")),
    ("invalid_expiry", "service_token"): Answer(400, N_("A token lasts 1 to 3650 days, or until revoked.")),
    "token_unknown": Answer(404, N_("There is no such token.")),
    **{(f"invalid_{name}", "audit_number"): Answer(400, N_("%(name)s must be a number."))
       for name in ("account", "device", "before", "limit")},
    **{(f"invalid_{name}", "audit_time"): Answer(400, N_("%(name)s must be a date and time (ISO 8601)."))
       for name in ("since", "until")},
    # -- OpenID Connect clients ------------------------------------------------------------------------------
    # invalid_<field> names the field in the body too; the case says what is wrong with it.
    ("invalid_jwks", "client_jwks_method"): Answer(
        400, N_("private_key_jwt needs the client's public JWKS, and only it takes one."), shown=("field",)),
    ("invalid_jwks", "client_jwks_keys"): Answer(
        400, N_("The JWKS is not a set of public keys: %(error)s"), shown=("field",)),
    ("invalid_sector", "client_sector"): Answer(
        400, N_("The redirect URIs have different hosts; give the sector explicitly."), shown=("field",)),
    ("invalid_client_id", "client_client_id"): Answer(
        400, N_("A client ID is 1 to 64 letters, digits, dots, underscores or hyphens, not starting with a hyphen."),
        shown=("field",)),
    (None, "client_fixed"): Answer(400, N_("This setting cannot be changed here."), shown=("field",)),  # any field
    **{(f"invalid_{field}", "client_yes_or_no"): Answer(400, N_("This setting is yes or no."), shown=("field",))
       for field in ("allow_national_id", "allow_card_login")},
    **{(f"invalid_{field}", "client_choice"): Answer(400, N_("Choose one of: %(choices)s."), shown=("field",))
       for field in ("token_endpoint_auth_method", "id_token_alg", "subject_type")},
    ("invalid_name", "client_name"): Answer(
        400, N_("Give the site a name of at most %(max)d characters."), shown=("field",)),
    **{(f"invalid_{field}", "client_uri_list"): Answer(400, N_("Give a list of URLs."), shown=("field",))
       for field in ("redirect_uris", "post_logout_redirect_uris")},
    ("invalid_redirect_uris", "client_no_redirect_uri"): Answer(
        400, N_("Give at least one redirect URI."), shown=("field",)),
    **{(f"invalid_{field}", "client_insecure_uri"): Answer(
        400, N_("%(uri)s is not an HTTPS URL without a fragment."), shown=("field",))
       for field in ("redirect_uris", "post_logout_redirect_uris")},
    ("invalid_allowed_scopes", "client_scope_list"): Answer(400, N_("Give a list of scopes."), shown=("field",)),
    ("invalid_allowed_scopes", "client_national_id_scope"): Answer(
        400, N_("The national_id scope needs the client to be allowed the national ID."), shown=("field",)),
    ("invalid_allowed_scopes", "client_scopes_supported"): Answer(
        400, N_("Scopes must include openid and be among %(scopes)s."), shown=("field",)),
    "client_exists": Answer(409, N_("A client with this ID exists.")),
    "client_has_no_secret": Answer(409, N_("This client authenticates without a shared secret.")),
    "client_unknown": Answer(404, N_("There is no such client.")),
    # The national ID typed on the consent page, shown there; "locked" is never shown: the authorization
    # ends and the site hears access_denied.
    ("national_id_not_confirmed", "missing"): Answer(400, N_("Enter your national ID number.")),
    ("national_id_not_confirmed", "invalid"): Answer(400, N_("The national ID number is not valid.")),
    ("national_id_not_confirmed", "mismatch"): Answer(400, N_("This is not the national ID number of your account.")),
    ("national_id_not_confirmed", "locked"): Answer(403, N_("This is not the national ID number of your account.")),
}


def lookup(refusal: Refusal) -> Answer:
    """The table's entry for ``refusal``; ``KeyError`` when there is none (a bug, answered as a 500)."""
    for key in ((refusal.code, refusal.case), refusal.code, (None, refusal.case)):
        if key in ANSWERS and (key != (None, None)):
            return ANSWERS[key]
    raise KeyError(f"no answer for the refusal {refusal!r}")


def message(refusal: Refusal) -> str:
    """The refusal's message in the request's language."""
    return gettext(lookup(refusal).message, **refusal.params)


def body(refusal: Refusal) -> dict:
    entry = lookup(refusal)
    shown = {name: refusal.params[name] for name in entry.shown if name in refusal.params}
    return {"error": refusal.code, "message": gettext(entry.message, **refusal.params), **shown}


def json_response(refusal: Refusal):
    response = jsonify(body(refusal))
    response.status_code = lookup(refusal).status
    return response
