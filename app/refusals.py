"""What each refusal means over HTTP: its status and its message, zh-TW and English, written once.

Services raise :class:`~app.services.refusals.Refusal` (a code and its facts); the views and the error
handler ask :func:`answer` for the status, the translated message and the JSON body. The JSON API answers
``{"error": code, "message": text, ...}`` with the fields an entry lists in ``shown``; a page shows the
message in its own layout. A code missing here is a bug, and ``tests/app/test_refusals.py`` fails on it.

Entries are keyed ``code`` or ``(code, case)``; ``(None, case)`` is the answer for a code of that family
the table does not list (a WebAuthn or card reason added in a later release). Looked up in that order:
``(code, case)``, then the family ``(None, case)``, then the plain ``code``.
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
    # -- the door: bodies and requests, and what the framework refuses --------------------------------------
    "csrf_failed": Answer(400, N_("The page is out of date. Please reload it and try again.")),
    "invalid_host": Answer(400, N_("The Host header is not a valid host name.")),
    "internal_error": Answer(500, N_("The server could not handle the request. Please try again later.")),
    "service_unavailable": Answer(503, N_("The service is briefly unavailable. Please try again in a moment.")),
    "malformed_input": Answer(400, N_("The request body must be a JSON object.")),
    "json_too_deep": Answer(400, N_("The JSON is nested too deeply (at most %(depth)d levels).")),
    "invalid_characters": Answer(
        400, N_("The request contains characters that cannot be stored (NUL or a lone surrogate).")
    ),
    # -- sessions and staff ------------------------------------------------------------------------------
    "login_required": Answer(401, N_("Please log in first.")),
    ("invalid_token", "service_token"): Answer(401, N_("The service token is unknown, revoked or expired.")),
    "forbidden": Answer(403, N_("You are not allowed to do this."), shown=("scope",)),
    ("forbidden", "staff"): Answer(403, N_("This page is for administrators.")),
    "reason_required": Answer(400, N_("Please give a reason.")),
    "reason_too_long": Answer(400, N_("The reason can be at most %(max)d characters.")),
    # -- card login ----------------------------------------------------------------------------------------
    # A body that cannot be a component's answer, refused before it spends the challenge.
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
    # The card's issuing CA (MOICA) could not be checked at its root (GRCA): another host, another cause.
    ("issuer_revocation_unknown", "card"): Answer(
        503,
        N_(
            "The status of the certification authority that issued this card could not be checked "
            "(its root authority could not be reached). Please try again later."
        ),
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
    ("card_login_required", "binding"): Answer(403, N_("Binding a phone needs a login with your IC card.")),
    ("card_login_required", "renewal"): Answer(403, N_("Renewing needs a login with your IC card.")),
    "email_not_verified": Answer(409, N_("Please confirm your email address before binding a phone.")),
    "device_limit": Answer(409, N_("You already have %(limit)d devices. Unbind one first."), shown=("limit",)),
    "binding_unknown": Answer(404, N_("This QR code is not valid.")),
    ("binding_unknown", "status"): Answer(404, N_("There is no such binding.")),  # another account's, too
    "binding_used": Answer(409, N_("This QR code was already used. Start binding again.")),
    "binding_expired": Answer(410, N_("This QR code has expired. Start binding again on the computer.")),
    ("binding_expired", "session_ended"): Answer(410, N_("The computer's session that started this binding has ended.")),
    # Ended by the computer: a newer QR code was made (the page reloaded, another tab) or a phone bound.
    "binding_replaced": Answer(
        410, N_("This QR code no longer works: the computer has made a newer one. Scan the QR code it shows now.")
    ),
    "binding_not_scanned": Answer(409, N_("Ask for the binding options first.")),
    ("malformed_input", "phone_answer"): Answer(400, N_("The phone's answer could not be read.")),
    "credential_exists": Answer(409, N_("This phone is already bound.")),
    "invalid_device_name": Answer(400, N_("Please give the device a name.")),
    ("invalid_device_name", "too_long"): Answer(400, N_("The device name is too long.")),
    # The phone's attestation, refused by webauthn/ (its exc.reason is the code).
    ("user_not_verified", "binding"): Answer(
        400, N_("The phone did not verify you with fingerprint or face. Set up biometrics and try again.")
    ),
    ("origin_mismatch", "binding"): Answer(400, N_("The phone answered for another site.")),
    ("rp_id_mismatch", "binding"): Answer(400, N_("The phone answered for another site.")),
    (None, "binding"): Answer(400, N_("The phone's answer could not be verified. Start binding again.")),
    "device_unknown": Answer(404, N_("There is no such device.")),  # the admin's device_action says the same
    "certificate_unknown": Answer(404, N_("This device has no certificate.")),
    # A status change refused because the device's status is not one it changes from (the code names it).
    ("device_suspended", "suspend"): Answer(409, N_("Only an active device can be suspended.")),
    ("device_revoked", "suspend"): Answer(409, N_("Only an active device can be suspended.")),
    ("device_active", "resume"): Answer(409, N_("Only a suspended device can be resumed.")),
    ("device_revoked", "resume"): Answer(409, N_("Only a suspended device can be resumed.")),
    ("device_revoked", "revoke"): Answer(409, N_("This device is already unbound.")),
    ("device_suspended", "renew"): Answer(409, N_("Only an active device can be renewed.")),
    ("device_revoked", "renew"): Answer(409, N_("Only an active device can be renewed.")),
    "renewal_changes_nothing": Answer(
        409, N_("Renewing now would not move this device's end date: its certificate already runs a full year.")
    ),
    ("renewal_changes_nothing", "possibly_cloned"): Answer(
        409, N_("A phone that may have been copied is not renewed: unbind it and bind your phone anew.")
    ),
    ("account_locked", "resume"): Answer(409, N_("Unlock the account before resuming its devices.")),
    # A phone that may not log its person in (any login with it: the QR code or a passkey).
    ("device_expired", "use"): Answer(
        403, N_("This phone's mobile certificate has expired. Log in with your IC card to renew it.")
    ),
    ("device_suspended", "use"): Answer(403, N_("This phone is suspended. Contact support.")),
    ("device_revoked", "use"): Answer(403, N_("This phone is no longer bound.")),
    # A login answer refused by webauthn/ (its exc.reason is the code).
    ("sign_count_regression", "assertion"): Answer(401, N_("This phone's key may have been copied. Contact support.")),
    (None, "assertion"): Answer(401, N_("The phone's answer could not be verified.")),
    # -- phone login -------------------------------------------------------------------------------------------
    ("malformed_input", "login_request"): Answer(400, N_("The login request could not be read.")),
    ("malformed_input", "passkey_answer"): Answer(400, N_("The answer could not be read.")),
    ("invalid_client", "phone_login"): Answer(400, N_("This login request is not for a known site.")),
    "login_request_unknown": Answer(404, N_("There is no such login request.")),
    ("login_request_unknown", "qr"): Answer(404, N_("This QR code is not valid.")),
    "login_request_used": Answer(409, N_("This login was already used. Start again.")),
    ("login_request_used", "qr"): Answer(409, N_("This QR code was already used. Start again on the computer.")),
    "login_request_expired": Answer(410, N_("This login has expired. Start again.")),
    ("login_request_expired", "qr"): Answer(410, N_("This QR code has expired. Start again on the computer.")),
    ("login_request_expired", "client_disabled"): Answer(410, N_("This site can no longer log in with MoCert.")),
    # Declined on the phone ("not me, or a different code"): the request is over, whoever asks.
    "login_request_declined": Answer(409, N_("This login was declined on the phone. Start again.")),
    ("login_request_declined", "qr"): Answer(
        409, N_("This login was declined on this phone; it can no longer be approved.")
    ),
    "login_not_approved": Answer(409, N_("This login has not been approved on the phone.")),
    "login_not_started": Answer(409, N_("Ask for the login options first.")),
    "login_not_scanned": Answer(409, N_("Ask for the login options first.")),
    "credential_unknown": Answer(401, N_("This phone is not bound to MoCert.")),
    # -- an agency's request on the phone (the TW FidO codes, which the agency's poll answers too) -----------
    ("malformed_input", "sp_answer"): Answer(400, N_("The answer could not be read.")),
    ("SPTKT_PLD_FT_ERR", "sp_phone"): Answer(400, N_("This is not an agency's request code.")),
    ("SPTKT_DIG_FT_ERR", "sp_phone"): Answer(
        400, N_("This request code is incomplete or was altered. Scan it again from the agency's page.")
    ),
    ("SPTKTID_SPTKT_NF", "sp_phone"): Answer(404, N_("There is no such request.")),
    ("SPTKTID_SPTKT_RDM", "sp_phone"): Answer(409, N_("This request was already answered.")),
    ("SPTKT_OVD", "sp_phone"): Answer(410, N_("This request has expired. Start again on the agency's page.")),
    ("DEVID_SPTKT_MISMATCH", "sp_phone"): Answer(
        403, N_("This phone is not one the request was sent to. Use a phone bound to your own account.")
    ),
    # -- a phone's inbox of pushed requests, and its notices ---------------------------------------------------
    "inbox_opening_unknown": Answer(404, N_("This page is out of date. Open the inbox again.")),
    "inbox_opening_used": Answer(409, N_("This page is out of date. Open the inbox again.")),
    "inbox_opening_expired": Answer(410, N_("Opening the inbox took too long. Open it again.")),
    "inbox_unknown": Answer(401, N_("The inbox is closed. Open it again with your fingerprint or face.")),
    "inbox_expired": Answer(401, N_("The inbox closed after a while. Open it again with your fingerprint or face.")),
    "push_disabled": Answer(409, N_("Notifications are not set up on this server.")),
    ("invalid_push_subscription", "subscription"): Answer(
        400, N_("This browser's notification subscription could not be read."), shown=("reason",)),
    ("invalid_push_subscription", "push_service"): Answer(
        400, N_("This browser's push service is not one MoCert sends notifications through.")),
    # -- SP-API-WEB-01: MoCert's page following an agency's request (app/sp_api/web.py) --------------------
    ("SPTKTID_SPTKT_NF", "sp_web"): Answer(404, N_("There is no such request. Start again on the agency's site.")),
    ("SPTKTID_SPTKT_RDM", "sp_web"): Answer(409, N_("The answer to this request was already sent to the agency.")),
    ("sp_request_not_approved", "sp_web"): Answer(409, N_("This request has not been approved yet.")),
    ("SPTKT_OVD", "sp_web"): Answer(410, N_("It took too long. Start again on the agency's site.")),
    # -- administration --------------------------------------------------------------------------------------
    "one_criterion": Answer(400, N_("Search by one of: national ID, email, mobile number or name.")),
    **{(f"invalid_{kind}", "search_criterion"): Answer(
        400, N_("Search by one of: national ID, email, mobile number or name."))
       for kind in ("national_id", "email", "phone", "name")},
    ("invalid_national_id", "search"): Answer(400, N_("The national ID number is not valid.")),
    **{(f"invalid_{field}", "search"): Answer(400, N_("The email address or mobile number is not valid."))
       for field in ("email", "phone")},
    "account_unknown": Answer(404, N_("There is no such account.")),
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
       for field in ("allow_national_id", "allow_card_login", "backchannel_logout_session_required")},
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
       for field in ("redirect_uris", "post_logout_redirect_uris", "backchannel_logout_uri")},
    ("invalid_backchannel_logout_uri", "client_one_uri"): Answer(
        400, N_("Give one back-channel logout URL, or none."), shown=("field",)),
    ("invalid_allowed_scopes", "client_scope_list"): Answer(400, N_("Give a list of scopes."), shown=("field",)),
    ("invalid_allowed_scopes", "client_national_id_scope"): Answer(
        400, N_("The national_id scope needs the client to be allowed the national ID."), shown=("field",)),
    ("invalid_allowed_scopes", "client_scopes_supported"): Answer(
        400, N_("Scopes must include openid and be among %(scopes)s."), shown=("field",)),
    "client_exists": Answer(409, N_("A client with this ID exists.")),
    "client_has_no_secret": Answer(409, N_("This client authenticates without a shared secret.")),
    "client_unknown": Answer(404, N_("There is no such client.")),
    # -- agencies (需用機關) of the TW FidO service-provider API: registered by flask agencies, the console --
    ("invalid_name", "agency_name"): Answer(
        400, N_("Give the agency a name of at most %(max)d characters."), shown=("field",)),
    ("invalid_allowed_ips", "agency_cidr_list"): Answer(
        400, N_("Give a list of IP addresses or networks (CIDR)."), shown=("field",)),
    ("invalid_allowed_ips", "agency_cidr_count"): Answer(
        400, N_("Give at most %(max)d IP addresses or networks."), shown=("field",)),
    ("invalid_allowed_ips", "agency_cidr"): Answer(
        400, N_("%(cidr)s is not an IP address or network in CIDR notation (such as 203.0.113.0/24)."),
        shown=("field", "cidr")),
    ("invalid_allowed_ips", "agency_cidr_host_bits"): Answer(
        400, N_("%(cidr)s has host bits set: did you mean %(network)s?"), shown=("field", "cidr", "network")),
    ("invalid_callback_url", "agency_callback_url"): Answer(
        400, N_("%(url)s is not an absolute HTTPS URL without a fragment (plain HTTP only on localhost)."),
        shown=("field",)),
    "agency_unknown": Answer(404, N_("There is no agency %(sp_service_id)s.")),
    "agency_disabled": Answer(409, N_("Agency %(sp_service_id)s is disabled: it gets no new key.")),
    # The national ID typed on the consent page, shown there; "locked" is never shown: the authorization
    # ends and the site hears access_denied.
    ("national_id_not_confirmed", "missing"): Answer(400, N_("Enter your national ID number.")),
    ("national_id_not_confirmed", "invalid"): Answer(400, N_("The national ID number is not valid.")),
    ("national_id_not_confirmed", "mismatch"): Answer(
        400, N_("This is not the national ID number of your account."), shown=("attempts_left",)),
    ("national_id_not_confirmed", "locked"): Answer(403, N_("This is not the national ID number of your account.")),
}


def lookup(refusal: Refusal) -> Answer:
    """The table's entry for ``refusal``; ``KeyError`` when there is none (a bug, answered as a 500)."""
    # A case names where the refusal was raised: its family's answer fits better than the code's plain one.
    for key in ((refusal.code, refusal.case), (None, refusal.case), refusal.code):
        if key in ANSWERS and key != (None, None):
            return ANSWERS[key]
    raise KeyError(f"no answer for the refusal {refusal!r}")


def message(refusal: Refusal) -> str:
    """The refusal's message in the request's language."""
    return gettext(lookup(refusal).message, **refusal.params)


def body(refusal: Refusal) -> dict:
    entry = lookup(refusal)
    shown = {name: refusal.params[name] for name in entry.shown if name in refusal.params}
    answer = {"error": refusal.code, "message": gettext(entry.message, **refusal.params), **shown}
    if refusal.params.get("also"):  # further refusals of the same request (a form's other wrong fields)
        answer["also"] = [{"error": other.code, "message": message(other)} for other in refusal.params["also"]]
    return answer


def json_response(refusal: Refusal):
    response = jsonify(body(refusal))
    response.status_code = lookup(refusal).status
    return response
