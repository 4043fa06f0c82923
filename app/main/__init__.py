"""Public pages (home, help), the language switch, health checks."""

from __future__ import annotations

import json
from pathlib import Path

from flask import Blueprint, current_app, jsonify, make_response, redirect, render_template, request
from sqlalchemy import text

from ..api import local_path
from ..extensions import db
from ..i18n import LANGUAGE_COOKIE, supported_locale

bp = Blueprint("main", __name__)

# The brief's contacts; a deployment names its own in MOCERT_SUPPORT_CONTACTS_FILE (a JSON list).
DEMO_SUPPORT_CONTACTS = [
    {
        "name": "內政部憑證管理中心 MOICA",
        "phone": "0800-080-117",
        "hours": ["【平日】AM 07:00–PM 11:00", "【例假日】AM 08:30–PM 05:30"],
        "url": "https://moica.nat.gov.tw/",
    }
]


@bp.get("/")
def index():
    return render_template("index.html")


@bp.get("/help")
def help_page():
    path = current_app.config["SUPPORT_CONTACTS"]
    contacts = json.loads(Path(path).read_text(encoding="utf-8")) if path else DEMO_SUPPORT_CONTACTS
    return render_template("help.html", support_contacts=contacts)


@bp.get("/lang/<code>")
def set_language(code: str):
    response = make_response(redirect(local_path(request.args.get("next")) or "/"))
    locale = supported_locale(code)
    if locale:
        response.set_cookie(LANGUAGE_COOKIE, locale, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
    return response


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # any database failure means "not ready"; the reason goes to the log
        current_app.logger.exception("readiness check failed")
        db.session.rollback()
        return jsonify(status="unavailable", error="database_unavailable", message="database does not answer"), 503
    return jsonify(status="ok")
