"""The OpenID Connect provider: its endpoints (``routes``), the Authlib wiring (``oauth2``), signing keys
(``keys``), claims (``claims``) and the full national ID for the clients allowed it (``national_id``).

Authenticating the person is one seam (``routes._authenticated_account``): a session fresh enough for the
request continues; otherwise the person goes to our login page for the request (``/authorize/login``,
``phone_login``: the phone by QR code, a passkey on this device, or ``/login?next=<this request>`` with the
IC card where the client allows it) and comes back.
"""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("oidc", __name__)


def init_app(app: Flask) -> None:
    """The provider's Authlib server and resource protector, built once for ``app``, and its endpoints."""
    from . import oauth2

    server, protector = oauth2.create_server(app)
    app.extensions["mocert.oidc"] = (server, protector)
    app.register_blueprint(bp)


from . import routes  # noqa: E402,F401 - the views attach themselves to bp
