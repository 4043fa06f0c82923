"""The mobile CA's public status: its certificate, its CRL and its OCSP responder, at the stable URLs
every mobile certificate names (``services.mobile_certificates.StatusUrls``); and the
``flask mobile-certificates`` commands.

Relying parties fetch these without a session or a CSRF token, so the blueprint is CSRF-exempt; nothing
here is rate-limited (the answers are signed once per request, or served from the stored CRL).
"""

from __future__ import annotations

import click
from flask import Blueprint
from flask.cli import AppGroup

from ..extensions import db
from ..services.mobile_certificates import PKI_PATH

bp = Blueprint("mobile_pki", __name__, url_prefix=PKI_PATH)

from . import routes  # noqa: E402,F401 - the views register themselves on the blueprint

cli = AppGroup("mobile-certificates", help="The mobile-certificate CA.")


@cli.command("reissue")
def reissue() -> None:
    """Reissue live certificates that do not name the status URLs (CRL, OCSP, CA); idempotent."""
    from ..wiring import parts

    done = parts().mobile_certificates.reissue_with_status_urls(actor="cli")
    db.session.commit()
    for item in done:
        superseded = ", ".join(item.superseded) or "-"
        click.echo(f"device {item.device_id}: certificate {item.certificate or '-'}, superseded {superseded}")
    click.echo(f"{sum(1 for item in done if item.certificate)} certificate(s) reissued")
