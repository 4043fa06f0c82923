"""The mobile CA's certificate, CRL and OCSP responder: thin views over ``MobileCertificates``."""

from __future__ import annotations

import base64
import binascii

from flask import Response, request

from ..extensions import db
from ..input_checks import reads_raw_path
from ..wiring import parts
from . import bp


@bp.get("/ca.cer")
def ca_certificate():
    return Response(parts().mobile_certificates.ca_certificate_der(), mimetype="application/pkix-cert")


@bp.get("/ca.crl")
def crl():
    der = parts().mobile_certificates.current_crl()
    db.session.commit()  # a CRL refreshed on its way out is stored
    return Response(der, mimetype="application/pkix-crl")


@bp.post("/ocsp")
def ocsp_post():
    return _ocsp(request.get_data())


# RFC 6960 A.1: GET {url}/{url-encoding of the base64 DER request}. Clients do not all percent-encode the
# base64's "/", so the rest of the path is the request, slashes kept as they came. No request at all is
# malformed too, answered as OCSP rather than as a page not found.
@bp.get("/ocsp", defaults={"encoded": ""})
@bp.get("/ocsp/", defaults={"encoded": ""})
@bp.get("/ocsp/<path:encoded>", merge_slashes=False)
@reads_raw_path  # not a 400 for %00: the base64 check below refuses it as OCSP does
def ocsp_get(encoded: str):
    try:
        der = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        der = b""  # answered as malformed
    return _ocsp(der)


def _ocsp(der: bytes) -> Response:
    return Response(parts().mobile_certificates.ocsp_response(der), mimetype="application/ocsp-response")
