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
    "json_too_deep": Answer(400, N_("The JSON is nested too deeply (at most %(depth)d levels).")),
    "invalid_characters": Answer(
        400, N_("The request contains characters that cannot be stored (NUL or a lone surrogate).")
    ),
    # -- sessions and staff ------------------------------------------------------------------------------
    "login_required": Answer(401, N_("Please log in first.")),
    # -- card login ----------------------------------------------------------------------------------------
    # A body that cannot be a component's answer, refused before it spends the challenge (English, as ever).
    ("malformed_input", "card_login_id"): Answer(400, N_("login_id is required")),
    ("malformed_input", "card_signature_type"): Answer(400, N_("signatureType must be one of %(types)s")),
    ("malformed_input", "card_signature"): Answer(
        400, N_("signature (and certb64, when given) must be base64 strings")
    ),
    # The card verifier's codes (iccard's CardLoginError.code): the input was wrong (400), the proof was
    # refused (401), the challenge is gone (404/409/410), or the CA could not be asked (503: try again
    # later, nothing wrong with the card).
    ("malformed_input", "card"): Answer(400, N_("The card component's answer could not be read.")),
    ("bad_signature", "card"): Answer(401, N_("The card's signature is not valid.")),
    ("tbs_mismatch", "card"): Answer(401, N_("The card signed something other than this login's challenge.")),
    ("unknown_issuer", "card"): Answer(401, N_("This card was not issued by a trusted certification authority.")),
    ("certificate_expired", "card"): Answer(
        401, N_("This card's certificate has expired. Please use your new card.")
    ),
    ("certificate_not_yet_valid", "card"): Answer(401, N_("This card's certificate is not valid yet.")),
    ("certificate_revoked", "card"): Answer(401, N_("This card's certificate has been revoked.")),
    ("revocation_unknown", "card"): Answer(
        503, N_("The certification authority could not be reached to check this card. Please try again later.")
    ),
    ("certificate_not_accepted", "card"): Answer(401, N_("This certificate cannot be used to log in.")),
    ("challenge_unknown", "card"): Answer(404, N_("This login was not started here. Please start again.")),
    ("challenge_expired", "card"): Answer(410, N_("The login took too long. Please start again.")),
    ("replayed", "card"): Answer(409, N_("This signature was already used. Please start again.")),
    (None, "card"): Answer(401, N_("The card login failed.")),
    # A locked account's login, by card or by phone (403; the console's "already locked" is another answer).
    ("account_locked", "login"): Answer(403, N_("This account is locked. Please contact the service desk.")),
    # -- registration, email and contact -----------------------------------------------------------------
    ("card_login_required", "registration"): Answer(401, N_("Please log in with your IC card first.")),
    ("invalid_national_id", "registration"): Answer(400, N_("The national ID number is not valid."), shown=("reason",)),
    ("invalid_email", "contact"): Answer(400, N_("The email address is not valid."), shown=("detail",)),
    ("invalid_phone", "contact"): Answer(
        400, N_("Please enter a Taiwan mobile number, such as 0912345678."), shown=("detail",)
    ),
    "national_id_mismatch": Answer(
        400, N_("This national ID does not belong to the card's holder."), shown=("attempts_left",)
    ),
    "identity_check_unavailable": Answer(
        503,
        N_("Your national ID could not be checked with the certification authority now. Please try again later."),
    ),
    "too_many_identity_checks": Answer(
        429,
        N_("Too many national ID numbers were tried with this card login. Please log in with your card again."),
    ),
    "already_registered": Answer(409, N_("This person registered a moment ago. Please log in again.")),
    "name_mismatch": Answer(
        409,
        N_(
            "This card cannot be linked to the account of this national ID here. The account is unchanged and "
            "its owner has been told. Please contact the service desk."
        ),
    ),
    "no_pending_code": Answer(400, N_("There is no code waiting. Ask for a new one.")),
    "code_expired": Answer(400, N_("The code has expired. Ask for a new one.")),
    "wrong_code": Answer(400, N_("That code is not right."), shown=("attempts_left",)),
    "too_many_attempts": Answer(
        429, N_("Too many wrong codes. Please wait, then try again."), shown=("retry_after",)
    ),
    "already_verified": Answer(400, N_("Your email address is already confirmed.")),
    "too_soon": Answer(429, N_("A code was just sent. Please wait a minute."), shown=("retry_after",)),
    # -- devices and binding --------------------------------------------------------------------------------
    # -- phone login -------------------------------------------------------------------------------------------
    # -- administration --------------------------------------------------------------------------------------
    # -- OpenID Connect clients ------------------------------------------------------------------------------
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
