"""The OpenID Connect provider's HTTP endpoints: thin views over ``oauth2`` (the Authlib wiring) and the
consent service.

A client allowed the full national ID that asks for it gets the consent page every time: the person types
the ID there (``national_id``), since MoCert cannot read it back.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from flask import current_app, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext, ngettext
from flask_login import current_user
from joserfc import jwt
from joserfc.errors import JoseError

from .. import refusals, wiring
from ..audit import Tags, record
from ..errors import error_page, oauth_message
from ..auth.login import log_out
from ..extensions import csrf, db
from ..services import consent, sessions
from ..services.refusals import Refusal
from . import bp, oauth2
from . import claims as oidc_claims
from . import national_id as oidc_national_id
from .keys import ALGORITHMS


def _server():
    return current_app.extensions["mocert.oidc"][0]


def _protector():
    return current_app.extensions["mocert.oidc"][1]


def _endpoint(path: str) -> str:
    return oauth2.issuer() + path


# -- discovery ---------------------------------------------------------------------------------------


@bp.get("/.well-known/openid-configuration")
def discovery():
    auth_methods = oauth2.CLIENT_AUTH_METHODS
    return jsonify(
        issuer=oauth2.issuer(),
        authorization_endpoint=_endpoint("/authorize"),
        token_endpoint=_endpoint("/oauth/token"),
        userinfo_endpoint=_endpoint("/userinfo"),
        jwks_uri=_endpoint("/.well-known/jwks.json"),
        revocation_endpoint=_endpoint("/oauth/revoke"),
        end_session_endpoint=_endpoint("/oidc/logout"),
        # Back-Channel Logout 1.0: a site that registers a URI is posted a logout token, with sid and sub.
        backchannel_logout_supported=True,
        backchannel_logout_session_supported=True,
        scopes_supported=list(oidc_claims.SCOPES_SUPPORTED),
        response_types_supported=["code"],
        response_modes_supported=["query"],
        grant_types_supported=["authorization_code", "refresh_token"],
        subject_types_supported=["pairwise", "public"],
        id_token_signing_alg_values_supported=list(ALGORITHMS),
        token_endpoint_auth_methods_supported=auth_methods,
        token_endpoint_auth_signing_alg_values_supported=list(ALGORITHMS),
        revocation_endpoint_auth_methods_supported=auth_methods,
        code_challenge_methods_supported=["S256"],
        prompt_values_supported=["none", "login", "consent"],
        claims_supported=sorted({c for cs in oidc_claims.SCOPE_CLAIMS.values() for c in cs}
                                | {"iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid"}),
        acr_values_supported=[acr for acr, _ in oidc_claims.AUTHENTICATION_METHODS.values()],
        claims_parameter_supported=False,
        request_parameter_supported=False,
        request_uri_parameter_supported=False,
        ui_locales_supported=["zh-TW", "en"],
    )


@bp.get("/.well-known/jwks.json")
def jwks():
    response = jsonify(oauth2.key_ring().jwks(current_app.config["OIDC_KEY_RETIRE_AFTER"]))
    response.cache_control.max_age = 300
    return response


# -- authorization -----------------------------------------------------------------------------------


@bp.route("/authorize", methods=["GET", "POST"])
def authorize():
    server = _server()
    account = current_user if current_user.is_authenticated else None
    grant = None
    try:
        grant = server.get_consent_grant(end_user=account)
        data = grant.request.payload.data
        prompts = set((data.get("prompt") or "").split())
        account = _authenticated_account(account, data, prompts, grant.client)
    except OAuth2Error as error:
        if grant is not None and not error.redirect_uri:  # the request is checked: tell the client there
            error.redirect_uri, error.state = grant.redirect_uri, grant.request.payload.state
        if not error.redirect_uri:  # unknown client or redirect URI: never redirect there
            return error_page(400, oauth_message(error.error))  # Authlib's description is English only
        return server.handle_error_response(request, error)

    state = grant.request.payload.state
    if account is None:
        if "none" in prompts:
            error = LoginRequiredError(redirect_uri=grant.redirect_uri, state=state)
            return server.handle_error_response(request, error)
        return redirect(_login_page_path())

    asked = consent.request_for(account, grant.client, scope_to_list(grant.request.scope),
                                ask_again="consent" in prompts)

    if request.method == "GET":
        if not asked.needs_answer:
            return server.create_authorization_response(grant=grant, grant_user=account)
        if "none" in prompts:
            return server.handle_error_response(
                request, ConsentRequiredError(redirect_uri=grant.redirect_uri, state=state)
            )
        return _consent_page(asked)

    # POST: the consent form (its CSRF token is checked by CSRFProtect before we get here).
    if request.form.get("decision") != "approve":
        consent.deny(account, asked)
        return server.create_authorization_response(grant=grant, grant_user=None)
    if asked.asks_national_id:
        try:
            grant.request.confirmed_national_id = oidc_national_id.confirm(
                account, asked.client, request.form.get("national_id")
            )
        except Refusal as refusal:
            if refusal.case == "locked":  # audited; the site hears access_denied
                return server.create_authorization_response(grant=grant, grant_user=None)
            return _consent_page(asked, error=_national_id_error(refusal)), refusals.lookup(refusal).status
    consent.grant(account, asked)
    return server.create_authorization_response(grant=grant, grant_user=account)


def _consent_page(asked: consent.ConsentRequest, error: str | None = None):
    descriptions = [gettext(oidc_claims.SCOPE_DESCRIPTIONS[s]) for s in asked.scopes]
    return render_template(
        "oidc_consent.html",
        client=asked.client,
        descriptions=descriptions,
        action=request.full_path,
        asks_national_id=asked.asks_national_id,
        national_id_error=error,
    )


def _national_id_error(refusal: Refusal) -> str:
    """The table's message; a wrong ID with attempts counted says how many are left (a plural)."""
    attempts_left = refusal.params.get("attempts_left")
    if refusal.case == "mismatch" and attempts_left is not None:
        return ngettext(
            "This is not the national ID number of your account. You can try %(num)d more time.",
            "This is not the national ID number of your account. You can try %(num)d more times.",
            attempts_left,
        )
    return refusals.message(refusal)


def _authenticated_account(account, data, prompts, client=None):
    """The seam: the person, when their session is fresh enough for this request; otherwise None.

    Fresh enough: created after we sent them to log in for this request, or — without ``prompt=login``
    — no older than ``max_age`` seconds (when given). A card session does not count for a client that
    does not allow card login.
    """
    if account is None:
        return None
    if client is not None and not client.allow_card_login and account.auth_session.method == "card":
        return None
    created = account.auth_session.created_at.timestamp()
    login_marker = wiring.parts().login_marker
    marker = login_marker.read(data.get(login_marker.NAME))
    if marker is not None and created >= marker:
        return account
    if "login" in prompts:
        return None
    max_age = data.get("max_age")
    if max_age is not None:
        # ASCII digits only: "²" passes isdigit() and int() refuses it; a few digits are decades enough.
        if not (isinstance(max_age, str) and max_age.isascii() and max_age.isdigit() and len(max_age) <= 10):
            raise InvalidRequestError("'max_age' must be a number of seconds.")
        if time.time() - created > int(max_age):
            return None
    return account


def _login_page_path() -> str:
    """Our login page for this authorize request (it marks the request when the person has logged in)."""
    params = wiring.parts().login_marker.strip(list(request.args.items(multi=True)))
    return f"{url_for('oidc_login.login_page')}?{urlencode(params)}"


# -- tokens, userinfo, revocation --------------------------------------------------------------------


@bp.post("/oauth/token")
@csrf.exempt
def token():
    return _server().create_token_response()


@bp.post("/oauth/revoke")
@csrf.exempt
def revoke():
    return _server().create_endpoint_response("revocation")


@bp.route("/userinfo", methods=["GET", "POST"])
@csrf.exempt
def userinfo():
    try:
        access = _protector().acquire_token(["openid"])
    except OAuth2Error as error:  # no token, invalid_token, insufficient_scope: each with its WWW-Authenticate
        response = jsonify(dict(error.get_body()))
        response.status_code = error.status_code
        response.headers.update(dict(error.get_headers()))
        return response
    released = oidc_national_id.releasable(access.client, access.scope)
    national_id = oidc_national_id.unseal(access, oidc_national_id.TOKEN) if released else None
    return jsonify(oauth2.user_info(access.account, access.client, access.scope, national_id))


# -- RP-initiated logout -----------------------------------------------------------------------------


@bp.get("/oidc/logout")
def logout():
    """End the MoCert session. A valid ``id_token_hint`` for this person logs out at once; otherwise
    the person confirms. Redirects only to a registered ``post_logout_redirect_uri`` (exact match)."""
    args = request.args
    claims = _id_token_hint_claims(args.get("id_token_hint"))
    client_id = args.get("client_id") or (claims or {}).get("aud")
    client = oauth2.query_client(client_id) if isinstance(client_id, str) else None
    if claims is not None and (client is None or claims.get("aud") != client.client_id):
        claims, client = None, None
    target = _post_logout_target(client, args.get("post_logout_redirect_uri"), args.get("state"))
    if current_user.is_authenticated:
        hint_matches = claims is not None and claims.get("sub") == oauth2.subject_for(current_user, client)
        if not hint_matches:
            fields = {k: args[k] for k in ("post_logout_redirect_uri", "state") if args.get(k)}
            if client is not None:
                fields["client_id"] = client.client_id
            return render_template("oidc_logout.html", confirm=True, client=client, fields=fields)
        _end_session(client)
    return redirect(target) if target else render_template("oidc_logout.html", confirm=False, client=client)


@bp.post("/oidc/logout")
def logout_confirmed():
    client = oauth2.query_client(request.form.get("client_id") or "")
    target = _post_logout_target(client, request.form.get("post_logout_redirect_uri"), request.form.get("state"))
    if current_user.is_authenticated:
        _end_session(client)
    return redirect(target) if target else render_template("oidc_logout.html", confirm=False, client=client)


def _id_token_hint_claims(hint) -> dict | None:
    """The claims of an ID token we issued (expired ones too: a logout often comes later), else None."""
    if not hint or not isinstance(hint, str):
        return None
    try:
        keys = oauth2.key_ring().verification_keys(current_app.config["OIDC_KEY_RETIRE_AFTER"])
        claims = jwt.decode(hint, keys, algorithms=list(ALGORITHMS)).claims
    except (JoseError, ValueError):
        return None
    return claims if claims.get("iss") == oauth2.issuer() else None


def _post_logout_target(client, uri, state) -> str | None:
    if client is None or not uri or uri not in client.post_logout_redirect_uris:
        return None
    return add_params_to_uri(uri, [("state", state)]) if state else uri


def _end_session(client) -> None:
    queued = sessions.end(current_user.auth_session)  # the sites it logged in to are told after the commit
    record(Tags.OIDC_LOGOUT, account=current_user, client=client.client_id if client else None,
           backchannel_logouts=queued)
    db.session.commit()
    log_out()
