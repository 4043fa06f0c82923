"""One shape for every API error: ``{"error": "<code>", "message": "<text>"}`` with a 4xx status.

Services raise :class:`~app.services.refusals.Refusal`, answered from the table in ``app/refusals.py``
(as are the refusals of the framework's own: CSRF, a bad Host, 500 and 503); handlers here make sure
that nothing under ``/api/`` ever answers with an HTML page or a 500 for bad input, and that whatever
fails anyway answers in the same shape: a JSON error for the API (and the OAuth endpoints), a page in the
person's language elsewhere — 503 "briefly unavailable" while the database does not answer, 500 for a
bug — never a bare framework page.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, current_app, g, jsonify, render_template, request
from flask.globals import request_ctx
from flask_babel import gettext
from flask_wtf.csrf import CSRFError
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import BadHost, HTTPException, InternalServerError

from . import refusals
from .extensions import db, login_manager
from .refusals import N_
from .services.refusals import Refusal

RETRY_AFTER_SECONDS = 30
# Not under /api/, but spoken to by programs that read JSON.
JSON_PATHS = ("/api/", "/oauth/", "/userinfo", "/.well-known/", "/healthz", "/readyz")
# The database does not answer, or not now (connection refused or lost, pool exhausted, a lock or
# serialization conflict): a retry may succeed, so it is a 503, not a 500.
DATABASE_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)

# When even the error template cannot be rendered: the page without the template, zh-TW first.
FALLBACK_PAGE = """<!doctype html>
<html lang="zh-Hant-TW">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{status} · MoCert</title></head>
<body>
<main>
<p>{status}</p>
<h1>{zh_heading}</h1><p>{zh_text}</p>
<h2 lang="en">{en_heading}</h2><p lang="en">{en_text}</p>
<p><a href="/">MoCert 行動自然人憑證</a></p>
</main>
</body>
</html>
"""
FALLBACK_TEXT = {
    503: ("服務暫時無法使用", "服務暫時無法使用，請稍後再試。", "Service unavailable",
          "The service is briefly unavailable. Please try again in a moment."),
    500: ("伺服器錯誤", "伺服器無法處理這個請求，請稍後再試。", "Server error",
          "The server could not handle the request. Please try again later."),
}

# The libraries' own messages are English only (Werkzeug's descriptions, Flask-Limiter's "5 per 1 minute",
# Authlib's "The client does not exist on this server."): whatever of theirs would reach a person is answered
# with ours instead, here, and tests/test_translations.py checks that each has its zh-TW translation. The JSON
# body keeps the library's code (not_found, method_not_allowed, invalid_client), which programs read.
HTTP_MESSAGES: dict[int, str] = {
    400: N_("The request could not be understood. Go back and try again."),
    401: N_("Please log in first."),
    403: N_("You are not allowed to see this page."),
    404: N_("There is no page at this address. Check the address, or start again from the home page."),
    405: N_("This address does not answer this kind of request."),
    410: N_("This page is no longer available."),
    413: N_("The request is too large."),
    429: N_("Too many requests. Please wait a moment, then try again."),
    503: N_("The service is briefly unavailable. Please try again in a moment."),
}
HTTP_OTHER_CLIENT_ERROR = N_("The request could not be handled. Go back and try again.")
HTTP_OTHER_SERVER_ERROR = N_("The server could not handle the request. Please try again later.")

# An OAuth error shown on our own page (an authorize request that cannot be sent back to its site: the client
# is unknown, or the redirect URI is not its). What the site hears (a redirect, a token endpoint's JSON) keeps
# Authlib's description: RFC 6749 allows only ASCII there, and it is written for the site's developers.
OAUTH_MESSAGES: dict[str, str] = {
    "invalid_client": N_("The site that sent you here is not registered with MoCert. Go back to the site and "
                         "tell its operator."),
    "invalid_request": N_("The site that sent you here asked to log in in a way MoCert cannot accept (its return "
                          "address is not registered, or the request is incomplete). Go back to the site and "
                          "try again."),
}
OAUTH_OTHER = N_("The site's login request could not be handled. Go back to the site and try again.")


def http_message(status: int) -> str:
    """Our message for a framework's refusal at ``status``, in the request's language."""
    fallback = HTTP_OTHER_SERVER_ERROR if status >= 500 else HTTP_OTHER_CLIENT_ERROR
    return gettext(HTTP_MESSAGES.get(status, fallback))


def oauth_message(error_code: str | None) -> str:
    """Our message for an OAuth error (its ``error`` code) shown to a person, in the request's language."""
    return gettext(OAUTH_MESSAGES.get(error_code or "", OAUTH_OTHER))


def error_response(status: int, code: str, message: str, **extra: object):
    response = jsonify({"error": code, "message": message, **extra})
    response.status_code = status
    return response


def _wants_json() -> bool:
    return request.path.startswith(JSON_PATHS) or request.accept_mimetypes.best == "application/json"


def error_page(status: int, message: str | None = None):
    """The error page at ``status``. It renders even when the request's Host could not be understood
    (no URL adapter to build links with) and, for a 5xx, without the database: the page then shows the
    person as logged out rather than asking the database who they are."""
    if request_ctx.url_adapter is None:  # Werkzeug refused the Host (BadHost): build links for ours
        host = urlsplit(current_app.config.get("PUBLIC_URL") or "").netloc or "localhost"
        request_ctx.url_adapter = current_app.url_map.bind(host)
    if status >= 500:
        g._login_user = login_manager.anonymous_user()  # Flask-Login's per-request user
    try:
        return render_template("error.html", status=status, message=message), status
    except Exception:  # noqa: BLE001 - whatever broke the page, the person still gets one
        current_app.logger.exception("the error page could not be rendered")
        zh_heading, zh_text, en_heading, en_text = FALLBACK_TEXT[503 if status == 503 else 500]
        page = FALLBACK_PAGE.format(status=status, zh_heading=zh_heading, zh_text=zh_text, en_heading=en_heading,
                                    en_text=en_text)
        return page, status, {"Content-Type": "text/html; charset=utf-8"}


def _rollback() -> None:
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - the connection may be the thing that is gone
        current_app.logger.warning("rollback failed after an error", exc_info=True)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(Refusal)
    def refused(exc: Refusal):
        # A page's form that can show the refusal beside itself catches it in its view; what reaches here
        # is answered in JSON for programs and as the error page for people.
        if _wants_json() or request.is_json:
            return refusals.json_response(exc)
        return error_page(refusals.lookup(exc).status, refusals.message(exc))

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return refusals.json_response(Refusal("csrf_failed"))  # the pages' scripts read it, forms included

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if isinstance(exc, InternalServerError):
            return internal_error(exc)
        if exc.response is not None:  # made by whoever raised it (the agencies' API's rate limit): theirs
            return exc.response
        code = getattr(exc, "error_code", None) or (exc.name or "error").lower().replace(" ", "_")
        if exc.code == 413:
            code = "payload_too_large"
        if isinstance(exc, BadHost):
            return refused(Refusal("invalid_host"))
        status = exc.code or 400
        if _wants_json():
            return error_response(status, code, http_message(status))
        return error_page(status, http_message(status))

    @app.errorhandler(InternalServerError)
    def internal_error(exc: InternalServerError):
        # Flask has logged the original exception; the answer says nothing about it.
        _rollback()
        return refused(Refusal("internal_error"))

    def database_unavailable(exc: Exception):
        app.logger.error("the database is unavailable: %s", exc)
        _rollback()
        response = app.make_response(refused(Refusal("service_unavailable")))
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    for kind in DATABASE_UNAVAILABLE:
        app.register_error_handler(kind, database_unavailable)
