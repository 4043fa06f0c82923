"""Registration, the account page and its API, email confirmation."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("account", __name__)

from . import routes  # noqa: E402,F401 - the views register themselves on bp
