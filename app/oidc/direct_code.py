"""The site's code issued by the step that completes a login, without the browser's second trip to /authorize.

A login from our login page used to end with the browser sent back to ``/authorize`` (marked as freshly
logged in), which checked the request again and only then issued the code: one more request, and a second
reading of the client, the nonce and the consent. When the login completes in one of our JSON calls (a passkey
on this device), the authorize request it was made for is known (it is stored with the login request), the
person has just logged in (so ``prompt=login`` and ``max_age`` are met), and the request can be checked and
answered right there, by the same Authlib server and grant as ``/authorize`` uses, in the login's transaction.

Only when the request asks nothing more of the person: a consent page to show (a first visit, new scopes,
``prompt=consent``, the full national ID to type) or anything wrong with the request sends the browser to
``/authorize`` as before, which shows the page or says what is wrong.
"""

from __future__ import annotations

from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc6749.util import scope_to_list
from flask import current_app
from werkzeug.datastructures import MultiDict

from ..extensions import db
from ..models import Account
from ..services import consent
from . import oauth2


class StoredPayload(OAuth2Payload):
    """The parameters as Authlib's Flask payload gives them: ``data`` the first of each (as
    ``request.args.get``), ``datalist`` all of them (its check of parameters given twice reads that)."""

    def __init__(self, params: list[tuple[str, str]]) -> None:
        self._params = MultiDict(params)

    @property
    def data(self) -> dict[str, str]:
        return self._params.to_dict(flat=True)

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._params.to_dict(flat=False)


class StoredAuthorizeRequest(OAuth2Request):
    """An authorize request (GET) from its stored parameters, as Authlib reads one from Flask's request."""

    def __init__(self, params: list[tuple[str, str]]) -> None:
        super().__init__("GET", f"{oauth2.issuer()}/authorize?{urlencode(params)}")
        self.payload = StoredPayload(params)
        self._args = MultiDict(params)

    @property
    def args(self):
        return self._args

    @property
    def form(self):
        return MultiDict()


def code_redirect(account: Account, params: list[tuple[str, str]]) -> str | None:
    """The site's redirect with a code for ``account`` (whose new session is ``account.auth_session``); None
    when /authorize must answer instead. Issuing the code COMMITS the caller's transaction with it (as
    /authorize commits before it redirects): call it last."""
    server = current_app.extensions["mocert.oidc"][0]
    db.session.flush()  # the new session's row, which the code names
    request = StoredAuthorizeRequest(params)
    try:
        grant = server.get_consent_grant(request=request, end_user=account)
    except OAuth2Error:
        return None  # /authorize says what is wrong, to the site or on its error page
    prompts = set((grant.request.payload.data.get("prompt") or "").split())
    asked = consent.request_for(account, grant.client, scope_to_list(grant.request.scope), ask_again="consent" in prompts)
    if asked.needs_answer:
        return None
    # The grant checked the request a moment ago (get_consent_grant): answered at once, not checked again as
    # the server's create_authorization_response would.
    try:
        _, _, headers = grant.create_authorization_response(grant.redirect_uri, account)
    except OAuth2Error:
        return None
    db.session.commit()
    return dict(headers).get("Location")
