"""The mobile CA's public status: its certificate, its CRL and its OCSP responder, at the stable URLs
every mobile certificate names (``services.mobile_certificates.StatusUrls``); and the
``flask mobile-certificates`` commands.

Relying parties fetch these without a session or a CSRF token, so the blueprint is CSRF-exempt; nothing
here is rate-limited (the answers are signed once per request, or served from the stored CRL).
"""

from __future__ import annotations

import base64
import binascii

import click
from flask import Blueprint, Response, request
from flask.cli import AppGroup

from ..extensions import db
from ..input_checks import reads_raw_path
from ..services import mobile_certificates
from ..services.mobile_certificates import PKI_PATH

bp = Blueprint("mobile_pki", __name__, url_prefix=PKI_PATH)


@bp.get("/ca.cer")
def ca_certificate():
    return Response(mobile_certificates.ca_certificate_der(), mimetype="application/pkix-cert")


@bp.get("/ca.crl")
def crl():
    der = mobile_certificates.current_crl()
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
    return Response(mobile_certificates.ocsp_response(der), mimetype="application/ocsp-response")


cli = AppGroup("mobile-certificates", help="The mobile-certificate CA.")


@cli.command("reissue")
def reissue() -> None:
    """Reissue live certificates that do not name the status URLs (CRL, OCSP, CA); idempotent."""
    done = mobile_certificates.reissue_with_status_urls(actor="cli")
    db.session.commit()
    for item in done:
        superseded = ", ".join(item.superseded) or "-"
        click.echo(f"device {item.device_id}: certificate {item.certificate or '-'}, superseded {superseded}")
    click.echo(f"{sum(1 for item in done if item.certificate)} certificate(s) reissued")
