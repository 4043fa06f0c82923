"""Development only: the demo PKI's issuer certificate, CRL, OCSP responder and identity check (``SERVE_DEMO_PKI``)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("demo_pki", __name__, url_prefix="/pki/demo")

from . import routes  # noqa: E402,F401 - the views register themselves on the blueprint
