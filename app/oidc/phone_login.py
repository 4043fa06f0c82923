"""Logging in at /authorize: our login page (phone by QR code, a passkey on this device, or the IC card),
its JSON API, and the phone's page and API. Thin views over ``services.mobile_login``."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, url_for

from ..api import json_body
from ..errors import ApiError
from ..extensions import csrf, limiter
from ..services import devices, mobile_login

bp = Blueprint("oidc_login", __name__)
# The phone has no session with us: the token in its URL is the capability, so no CSRF token applies.
phone_bp = Blueprint("oidc_phone_login", __name__)
csrf.exempt(phone_bp)


def _phone_limit() -> str:
    return current_app.config["PHONE_RATE_LIMIT"]


@bp.get("/authorize/login")
def login_page():
    query = request.query_string.decode("utf-8", "replace")
    try:
        params = mobile_login.authorize_params(query)
        client = mobile_login.client_for(params)
    except ApiError:
        # Not a request we can log in for: /authorize says what is wrong with it, as it always does.
        return redirect("/authorize?" + query)
    card_url = None
    if client.allow_card_login:
        from . import _login_marker_serializer

        marker = _login_marker_serializer().dumps(int(time.time()))
        marked = urlencode([*params, (mobile_login.LOGIN_MARKER, marker)])
        card_url = url_for("auth.login_page", next=f"/authorize?{marked}")
    return render_template("authorize_login.html", client=client, card_url=card_url, query=urlencode(params))


@bp.post("/api/v1/login-requests")
@limiter.limit(_phone_limit)  # each one is a row and a QR code: no more than a phone's worth of requests
def create_login_request():
    login, token = mobile_login.create(json_body().get("authorize"))
    url = mobile_login.login_url(token)
    return jsonify(
        login_request_id=login.public_id,
        url=url,
        qr_svg=devices.qr_svg(url),
        match_code=login.match_code,
        client_name=login.client.name,
        expires_in=int((login.expires_at - login.created_at).total_seconds()),
    ), 201


@bp.get("/api/v1/login-requests/<public_id>")
def login_request_status(public_id: str):
    return jsonify(mobile_login.status(public_id))


@bp.post("/api/v1/login-requests/<public_id>/complete")
def complete_login_request(public_id: str):
    return jsonify(status="logged_in", redirect=mobile_login.complete(public_id))


@bp.post("/api/v1/login-requests/<public_id>/passkey/options")
def passkey_options(public_id: str):
    return jsonify(mobile_login.passkey_options(public_id))


@bp.post("/api/v1/login-requests/<public_id>/passkey/complete")
def passkey_complete(public_id: str):
    return jsonify(status="logged_in", redirect=mobile_login.passkey_complete(public_id, json_body().get("credential")))


@phone_bp.get("/m/login/<token>")
def phone_login_page(token: str):
    return render_template("phone_login.html", token=token)


@phone_bp.post("/api/v1/m/login/<token>/options")
@limiter.limit(_phone_limit)
def phone_login_options(token: str):
    return jsonify(mobile_login.phone_options(token))


@phone_bp.post("/api/v1/m/login/<token>/complete")
@limiter.limit(_phone_limit)
def phone_login_complete(token: str):
    return jsonify(mobile_login.phone_complete(token, json_body().get("credential")))
