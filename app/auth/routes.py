"""The views of card login (page and API), logout, the CSRF token."""

from __future__ import annotations

from flask import current_app, jsonify, render_template, request
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from ..api import json_body, local_path
from ..audit import Tags, record
from ..extensions import db, limiter
from ..services import accounts, sessions
from .. import wiring
from . import bp
from .login import await_registration, browser, log_in, log_out


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
    challenge = wiring.parts().card_logins.begin()
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
    done = wiring.parts().card_logins.complete(json_body(), browser())
    body: dict = {"status": done.status}
    if done.account is not None:
        log_in(done.account)
        body["account"] = accounts.account_view(done.account)
    else:
        await_registration(done.pending_login)
    return jsonify(body)


@bp.post("/api/v1/logout")
def logout():
    if current_user.is_authenticated:
        queued = sessions.end(current_user.auth_session)
        record(Tags.LOGOUT, account=current_user, backchannel_logouts=queued)
        db.session.commit()
    log_out()
    return jsonify(status="logged_out")
