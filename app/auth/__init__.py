"""Card login (page and API), logout, the CSRF token."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("auth", __name__)

from . import routes  # noqa: E402,F401 - the views register themselves on bp
