"""The views of registration, the account page and its API, email confirmation."""

from __future__ import annotations

from flask import current_app, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import timezones
from ..api import json_body, local_path
from ..auth.login import browser, log_in, pending_registration
from ..extensions import limiter
from ..i18n import issuer_name
from ..services import accounts
from ..wiring import parts
from . import bp


@bp.get("/register")
def register_page():
    if pending_registration() is None:
        return redirect(url_for("auth.login_page"))
    return render_template("register.html", next_url=local_path(request.args.get("next")))


@bp.get("/account")
@login_required
def account_page():
    zone = timezones.display_zone()
    return render_template("account.html", time_zone=zone.key, zone_name=timezones.zone_name(zone))


def _registration_limit() -> str:
    return current_app.config["REGISTRATION_RATE_LIMIT"]


@bp.post("/api/v1/account/register")
@limiter.limit(_registration_limit)
def register():
    status, account, email_sent = parts().accounts.register(json_body(), pending_registration(), browser())
    log_in(account)
    body = {"status": status, "account": accounts.account_view(account)}
    if status == "registered":
        body["email_sent"] = email_sent
        return jsonify(body), 201
    return jsonify(body)


@bp.get("/api/v1/account")
@login_required
def account():
    view = accounts.account_view(current_user)
    for card in view["cards"]:  # the page shows the issuer by its name; "issuer" stays the DN
        card["issuer_name"] = issuer_name(card["issuer"])
    return jsonify(view)


@bp.post("/api/v1/account/verify-email")
@limiter.limit(_registration_limit)
@login_required
def verify_email():
    parts().accounts.verify_email(current_user, json_body().get("code"))
    return jsonify(status="verified")


@bp.post("/api/v1/account/email-code")
@limiter.limit(_registration_limit)
@login_required
def resend_email_code():
    sent = parts().accounts.resend_email_code(current_user)
    return jsonify(status="sent" if sent else "not_sent", email_sent=sent)
