"""Development only: the demo PKI's issuer certificate, CRL and OCSP responder (``SERVE_DEMO_PKI``)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from cryptography.hazmat.primitives.serialization import Encoding

from iccard.demo_pki import DemoPKI

bp = Blueprint("demo_pki", __name__, url_prefix="/pki/demo")


def _pki() -> DemoPKI:
    return DemoPKI(current_app.config["DEMO_PKI_DIR"])


@bp.get("/issuer.cer")
def issuer_certificate():
    return Response(_pki().issuer_certificate.public_bytes(Encoding.DER), mimetype="application/pkix-cert")


@bp.get("/issuer.crl")
def crl():
    return Response(_pki().crl(), mimetype="application/pkix-crl")


@bp.post("/ocsp")
def ocsp():
    return Response(_pki().ocsp_response(request.get_data()), mimetype="application/ocsp-response")
