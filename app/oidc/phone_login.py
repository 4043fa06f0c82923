"""Logging in at /authorize: our login page (phone by QR code, a passkey on this device, or the IC card),
its JSON API, and the phone's page and API. Thin views over ``services.mobile_login``.

The browser that asks for a login request is known by a random value in its Flask session (the browser
key, made here on its first request); only that browser can follow and complete the request.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, session, url_for

from ..api import json_body
from ..auth.login import browser, log_in
from ..extensions import csrf, limiter
from ..services import devices, mobile_login
from ..services.mobile_login import LoggedIn
from ..services.refusals import Refusal
from ..services.tokens import new_token
from ..wiring import parts

BROWSER_KEY = "mocert_login_browser"  # the Flask-session value that ties login requests to this browser

bp = Blueprint("oidc_login", __name__)
# The phone has no session with us: the token in its URL is the capability, so no CSRF token applies.
phone_bp = Blueprint("oidc_phone_login", __name__)
csrf.exempt(phone_bp)


def _phone_limit() -> str:
    return current_app.config["PHONE_RATE_LIMIT"]


def _browser_key() -> str | None:
    value = session.get(BROWSER_KEY)
    return value if isinstance(value, str) else None


def _logged_in(done: LoggedIn):
    """Put the session the login opened in a fresh cookie (no fixation) and send the browser on."""
    log_in(done.account)
    return jsonify(status="logged_in", redirect=done.redirect)


@bp.get("/authorize/login")
def login_page():
    query = request.query_string.decode("utf-8", "replace")
    logins = parts().mobile_logins
    try:
        params = logins.authorize_params(query)
        client = logins.client_for(params)
    except Refusal:
        # Not a request we can log in for: /authorize says what is wrong with it, as it always does.
        return redirect("/authorize?" + query)
    card_url = None
    if client.allow_card_login:
        marked = urlencode(parts().login_marker.mark(params))
        card_url = url_for("auth.login_page", next=f"/authorize?{marked}")
    return render_template("authorize_login.html", client=client, card_url=card_url, query=urlencode(params))


@bp.post("/api/v1/login-requests")
@limiter.limit(_phone_limit)  # each one is a row and a QR code: no more than a phone's worth of requests
def create_login_request():
    """A login request: its QR code (``qr_svg``) only when the body says ``"qr": true`` (the page that shows
    it), since drawing it costs more than the rest of the request; the passkey's options always."""
    logins = parts().mobile_logins
    body = json_body()
    key = _browser_key() or new_token()
    started = logins.create(body.get("authorize"), key)
    if session.get(BROWSER_KEY) != key:
        session[BROWSER_KEY] = key  # kept once there is a request to follow
    url = logins.login_url(started.token)
    answer = dict(
        login_request_id=started.public_id,
        url=url,
        match_code=started.match_code,
        client_name=started.client_name,
        expires_in=started.expires_in,
        passkey=started.passkey_options,
    )
    if body.get("qr") is True:
        answer["qr_svg"] = devices.qr_svg(url)
    return jsonify(answer), 201


@bp.get("/api/v1/login-requests/<public_id>")
def login_request_status(public_id: str):
    return jsonify(mobile_login.status(public_id, _browser_key()))


@bp.post("/api/v1/login-requests/<public_id>/complete")
def complete_login_request(public_id: str):
    return _logged_in(parts().mobile_logins.complete(public_id, _browser_key(), browser()))


@bp.post("/api/v1/login-requests/<public_id>/passkey/options")
def passkey_options(public_id: str):
    return jsonify(parts().mobile_logins.passkey_options(public_id, _browser_key()))


@bp.post("/api/v1/login-requests/<public_id>/passkey/complete")
def passkey_complete(public_id: str):
    credential = json_body().get("credential")
    return _logged_in(parts().mobile_logins.passkey_complete(public_id, _browser_key(), credential, browser()))


@phone_bp.get("/m/login/<token>")
def phone_login_page(token: str):
    return render_template("phone_login.html", token=token)


@phone_bp.post("/api/v1/m/login/<token>/options")
@limiter.limit(_phone_limit)
def phone_login_options(token: str):
    return jsonify(parts().mobile_logins.phone_options(token))


@phone_bp.post("/api/v1/m/login/<token>/complete")
@limiter.limit(_phone_limit)
def phone_login_complete(token: str):
    return jsonify(parts().mobile_logins.phone_complete(token, json_body().get("credential")))


@phone_bp.post("/api/v1/m/login/<token>/decline")
@limiter.limit(_phone_limit)
def phone_login_decline(token: str):
    return jsonify(parts().mobile_logins.phone_decline(token))
