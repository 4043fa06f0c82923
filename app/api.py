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


def local_path(target: str | None) -> str | None:
    """``target`` when it is a path on this server (no scheme, host, ``//`` or backslash tricks), else None.

    Whatever sends a person on (``next`` after login, the language switch) goes through this, so none of
    them becomes an open redirect.
    """
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(ch) < 0x20 for ch in target):
        return None
    return target
