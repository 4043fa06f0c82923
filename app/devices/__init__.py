"""Binding phones (the computer's page and the phone's page, and their APIs) and managing devices."""

from __future__ import annotations

from flask import Blueprint

from ..extensions import csrf

bp = Blueprint("devices", __name__)
# The phone has no session with us: the token in its URL is the capability, so no CSRF token applies.
phone_bp = Blueprint("phone", __name__)
csrf.exempt(phone_bp)

from . import routes  # noqa: E402,F401 - the views register themselves on the blueprints
