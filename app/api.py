"""Helpers shared by the JSON endpoints."""

from __future__ import annotations

from flask import request

from .input_checks import json_value
from .services.refusals import Refusal


def json_body() -> dict:
    """The request's JSON object, or a 400 that says what is wrong with it (see ``input_checks``: bounded
    depth, only text the database can store)."""
    data = json_value(request.get_data(cache=True)) if request.is_json else None
    if not isinstance(data, dict):
        raise Refusal("malformed_input")
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
