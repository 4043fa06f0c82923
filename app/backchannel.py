"""Posting a logout token to a site's ``backchannel_logout_uri`` (OpenID Connect Back-Channel Logout 1.0 §2.5):
the only module that makes that HTTP call, over ``requests``. No Flask, no database: everything comes in as
arguments, and the caller makes the call outside any transaction.

The URI is one an administrator registered (``services/clients.py`` checks it as it does redirect URIs), and
no redirect is followed: a site answers its own logout, it never sends MoCert's post somewhere else.

The error is ours: :class:`DeliveryFailed`, its ``reason`` a word or two for the audit trail.
"""

from __future__ import annotations

import requests

# §2.8: the site answers 200 (or 204: "no content" is as good); anything else is a failure to retry.
ACCEPTED = {200, 204}


class DeliveryFailed(Exception):
    """The site did not take the logout token; ``reason`` says how (``http_400``, ``timeout``, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def post_logout_token(uri: str, logout_token: str, *, timeout: float) -> None:
    """POST ``logout_token=...`` (form-encoded) to ``uri``. Returns when the site answered 200 or 204;
    raises :class:`DeliveryFailed` otherwise."""
    session = requests.Session()
    session.max_redirects = 0
    session.trust_env = False  # no proxy, no ~/.netrc credentials from the environment sent to a site
    try:
        # stream: the status is all that is read (a site's body, however long or slow, is never waited for).
        with session.post(
            uri,
            data={"logout_token": logout_token},
            headers={"Cache-Control": "no-store"},
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        ) as response:
            status = response.status_code
    except requests.Timeout:
        raise DeliveryFailed("timeout") from None
    except requests.RequestException:
        raise DeliveryFailed("unreachable") from None
    finally:
        session.close()
    if status not in ACCEPTED:
        raise DeliveryFailed(f"http_{status}")
