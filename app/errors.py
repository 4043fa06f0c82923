"""One shape for every API error: ``{"error": "<code>", "message": "<text>"}`` with a 4xx status.

Services raise :class:`ApiError` (or a domain error the views translate); handlers here make sure
that nothing under ``/api/`` ever answers with an HTML page or a 500 for bad input.
"""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def error_response(status: int, code: str, message: str, **extra: object):
    response = jsonify({"error": code, "message": message, **extra})
    response.status_code = status
    return response


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, **exc.extra)

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return error_response(400, "csrf_failed", _("The page is out of date. Please reload it and try again."))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        if exc.code == 413:
            code = "payload_too_large"
        if _wants_json():
            return error_response(exc.code or 400, code, exc.description or exc.name)
        return render_template("error.html", status=exc.code, message=exc.description), exc.code
