"""The TW FidO service-provider API (/moise/sp/…) for agencies, and the phone's side of their requests.

Three blueprints: ``bp`` is the agencies' API, server to server, answered in the contract's envelope (HTTP
200 for every business answer, the code in ``error_code``); ``phone_bp`` is the phone's: its pages
(/m/scan reads a request's QR code, /m/sp shows and answers it) and the calls they make to show and answer
a request, answered as the other phone endpoints are; ``web_bp`` is SP-API-WEB-01 (``web``): the agency's
form posted by the person's browser, MoCert's page and the page's calls. None has a session, so no CSRF
token applies: the agency's checksum, the phone's ticket and passkey, and the page's own token are the
proofs.
"""

from __future__ import annotations

from flask import Blueprint

from ..extensions import csrf

bp = Blueprint("sp_api", __name__)
phone_bp = Blueprint("sp_phone", __name__)
web_bp = Blueprint("sp_web", __name__)
csrf.exempt(bp)
csrf.exempt(phone_bp)
csrf.exempt(web_bp)

from . import routes, web  # noqa: E402,F401 - the views register themselves on the blueprints
