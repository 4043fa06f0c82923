"""A phone's inbox (/m/inbox): the page, its service worker, and its JSON API (thin views over
``services.inbox``).

The phone has no session with us: its passkey opens the inbox, and the inbox token it is given then
(``Authorization: Bearer``, never in a URL) is the capability, so no CSRF token applies.
"""

from __future__ import annotations

from flask import Blueprint

from ..extensions import csrf

bp = Blueprint("inbox", __name__)
csrf.exempt(bp)

from . import routes  # noqa: E402,F401 - the views register themselves on the blueprint
