"""Public pages (home, help), the language switch, health checks."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("main", __name__)

from . import routes  # noqa: E402,F401 - the views register themselves on bp
