"""The marketplace's side of OpenID Connect Back-Channel Logout 1.0: checking the logout token MoCert posts
to ``/backchannel-logout`` (§2.6), so that the session it names ends here too.

A token is taken only when it is signed by a key of MoCert's JWKS (the algorithms MoCert signs ID tokens
with), is a logout token (``typ`` ``logout+jwt``, the back-channel logout event, no ``nonce``: an ID token
must never pass for one), is from MoCert (``iss``) for this client (``aud``), is current (``iat``, ``exp``)
and names a session or a person (``sid``, ``sub``). Its ``jti`` is then spent once (``Store``): a replayed
token is refused.
"""

from __future__ import annotations

import time

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

EVENT = "http://schemas.openid.net/event/backchannel-logout"
ALGORITHMS = ["RS256", "ES256"]
LEEWAY = 60  # seconds of clock difference between MoCert and the marketplace


class InvalidLogoutToken(Exception):
    """Not a logout token the marketplace takes; the message says why (for its log)."""


class UnknownKey(InvalidLogoutToken):
    """Signed with a key these keys do not name (its ``kid``): MoCert may have a new one (fetch them again, once).
    A token that names a known key and does not verify with it is only invalid: fetching again would not help,
    and anybody could make the marketplace fetch MoCert's keys by posting garbage."""


def verify(logout_token: object, *, jwks: dict, issuer: str, client_id: str, now: float | None = None) -> dict:
    """The token's claims once every check of §2.6 passed (the ``jti`` aside: the store spends it). Raises
    :class:`InvalidLogoutToken`."""
    if not isinstance(logout_token, str) or not logout_token:
        raise InvalidLogoutToken("no logout_token")
    try:
        kid = jws.extract_compact(logout_token.encode()).headers().get("kid")
    except (JoseError, ValueError) as exc:
        raise InvalidLogoutToken(f"not a signed JWT: {exc}") from None
    if kid not in {key.get("kid") for key in jwks.get("keys", [])}:
        raise UnknownKey(f"signed with a key MoCert's keys do not name ({kid!r})")
    try:
        token = jwt.decode(logout_token, KeySet.import_key_set(jwks), algorithms=ALGORITHMS)
    except (JoseError, ValueError) as exc:
        raise InvalidLogoutToken(f"its signature does not verify: {exc}") from None
    header, claims = token.header, token.claims
    now = time.time() if now is None else now
    if header.get("typ") != "logout+jwt":
        raise InvalidLogoutToken("typ is not logout+jwt")
    if claims.get("iss") != issuer:
        raise InvalidLogoutToken("iss is not MoCert")
    audience = claims.get("aud")
    if audience != client_id and not (isinstance(audience, list) and client_id in audience):
        raise InvalidLogoutToken("aud is not this client")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or iat > now + LEEWAY:
        raise InvalidLogoutToken("iat missing or in the future")
    if not isinstance(exp, int) or exp < now - LEEWAY:
        raise InvalidLogoutToken("expired")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(EVENT), dict):
        raise InvalidLogoutToken("not the back-channel logout event")
    if "nonce" in claims:
        raise InvalidLogoutToken("a logout token carries no nonce")
    if not isinstance(claims.get("jti"), str) or not claims["jti"]:
        raise InvalidLogoutToken("no jti")
    if not isinstance(claims.get("sid"), str) and not isinstance(claims.get("sub"), str):
        raise InvalidLogoutToken("neither sid nor sub")
    return claims
