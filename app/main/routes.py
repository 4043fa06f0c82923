"""The public pages (home, help), the language switch and the health checks."""

from __future__ import annotations

from flask import current_app, jsonify, make_response, redirect, render_template, request, url_for
from sqlalchemy import text

from ..api import local_path
from ..extensions import db
from ..i18n import LANGUAGE_COOKIE, supported_locale
from ..wiring import parts
from . import bp


@bp.get("/")
def index():
    return render_template("index.html")


@bp.get("/help")
def help_page():
    return render_template("help.html", support_contacts=parts().support_contacts)


@bp.get("/lang/<code>")
def set_language(code: str):
    response = make_response(redirect(local_path(request.args.get("next")) or "/"))
    locale = supported_locale(code)
    if locale:
        response.set_cookie(LANGUAGE_COOKIE, locale, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
    return response


@bp.get("/favicon.ico")
def favicon():
    # Pages name the SVG icon; this is for what asks the old address on its own (bookmarks, feed readers).
    return redirect(url_for("static", filename="favicon.svg"), 301)


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
