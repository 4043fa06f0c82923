"""Card login (page and API), logout, the CSRF token."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template, request, session
from flask_login import current_user, logout_user
from flask_wtf.csrf import generate_csrf

from ..api import json_body, local_path
from ..audit import Tags, record
from ..extensions import db, limiter
from ..models import utcnow
from ..services import accounts, card_login

bp = Blueprint("auth", __name__)


@bp.get("/login")
def login_page():
    return render_template("login.html", next_url=local_path(request.args.get("next")))



@bp.get("/api/v1/csrf")
def csrf_token():
    return jsonify(csrf_token=generate_csrf())


def _card_login_limit() -> str:
    return current_app.config["CARD_LOGIN_RATE_LIMIT"]


@bp.post("/api/v1/card-login/begin")
@limiter.limit(_card_login_limit)
def card_login_begin():
    challenge = card_login.begin()
    return jsonify(
        login_id=challenge.login_id,
        tbs=challenge.tbs,
        tbsEncoding=challenge.tbs_encoding,
        hashAlgorithm=challenge.hash_algorithm,
        expires_in=challenge.expires_in,
    )


@bp.post("/api/v1/card-login/complete")
@limiter.limit(_card_login_limit)
def card_login_complete():
    status, account = card_login.complete(json_body())
    body: dict = {"status": status}
    if account is not None:
        body["account"] = accounts.account_view(account)
    return jsonify(body)


@bp.post("/api/v1/logout")
def logout():
    if current_user.is_authenticated:
        current_user.auth_session.ended_at = utcnow()
        record(Tags.LOGOUT, account=current_user)
        db.session.commit()
        logout_user()
    session.clear()
    return jsonify(status="logged_out")
