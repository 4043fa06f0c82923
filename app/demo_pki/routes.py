"""The demo PKI's views: its issuer certificate, CRL, OCSP responder and identity check."""

from __future__ import annotations

import base64
import binascii
import hmac

from cryptography.hazmat.primitives.serialization import Encoding
from flask import Response, abort, current_app, jsonify, request

from iccard.demo_pki import DemoPKI, MoicaProfilePKI, identity_check_token

from ..input_checks import json_value
from ..services.refusals import Refusal
from . import bp


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


# -- the MOICA-profile PKI (iccard.demo_pki.MoicaProfilePKI), when one was made beside the demo PKI ----------


def _moica_profile(authority: str | None = None) -> MoicaProfilePKI:
    pki = MoicaProfilePKI.in_demo_pki(current_app.config["DEMO_PKI_DIR"])
    if not MoicaProfilePKI.exists(pki.directory) or (authority is not None and authority not in pki.AUTHORITIES):
        abort(404)
    return pki


@bp.get("/moica-profile/<authority>.cer")
def moica_profile_certificate(authority: str):
    certificate = _moica_profile(authority).certificate(authority)
    return Response(certificate.public_bytes(Encoding.DER), mimetype="application/pkix-cert")


@bp.get("/moica-profile/<authority>.crl")
def moica_profile_crl(authority: str):
    return Response(_moica_profile(authority).crl(authority), mimetype="application/pkix-crl")


@bp.post("/moica-profile/<any(grca, moica):responder>/ocsp")
def moica_profile_ocsp(responder: str):
    answer = _moica_profile().ocsp_response(responder, request.get_data())
    return Response(answer, mimetype="application/ocsp-response")


@bp.post("/identity-check")
def identity_check():
    """The demo of MOICA's identity check, in the shape ``iccard/identity_check.py`` speaks."""
    pki = _pki()
    expected = f"Bearer {identity_check_token(pki.directory)}"
    if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected.encode()):
        return jsonify(error="unauthorized"), 401
    try:
        body = json_value(request.get_data())
    except Refusal:  # whatever the door refuses the body with, the demo answers bad_request
        body = None
    body = body if isinstance(body, dict) else {}
    certificate, national_id = body.get("certificate"), body.get("national_id")
    if not isinstance(certificate, str) or not isinstance(national_id, str):
        return jsonify(error="bad_request"), 400
    try:
        der = base64.b64decode(certificate, validate=True)
    except (binascii.Error, ValueError):
        return jsonify(error="bad_request"), 400
    return jsonify(result="confirmed" if pki.confirms_identity(der, national_id) else "denied")
