"""Helpers shared by the JSON endpoints."""

from __future__ import annotations

from flask import request
from flask_babel import gettext as _

from .errors import ApiError


def json_body() -> dict:
    """The request's JSON object, or a 400 that says what is wrong with it."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "malformed_input", _("The request body must be a JSON object."))
    return data
