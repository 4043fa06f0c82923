"""The marketplace's check of MoCert's back-channel logout tokens (examples/marketplace/backchannel.py) and the
store's once-only use of their ``jti``: what §2.6 of Back-Channel Logout asks a site to refuse is refused."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from examples.marketplace.backchannel import EVENT, InvalidLogoutToken, UnknownKey, verify
from examples.marketplace.store import Store

ISSUER, CLIENT = "http://localhost:5000", "marketplace-demo"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"})
JWKS = {"keys": [KEY.as_dict(private=False)]}


def _token(header=None, key=KEY, **changes) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": CLIENT, "iat": now, "exp": now + 120, "jti": "j-1", "sub": "s", "sid": "sid-1",
              "events": {EVENT: {}}}
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": "RS256", "kid": "k1", "typ": "logout+jwt", **(header or {})}, claims, key)


def _verify(token):
    return verify(token, jwks=JWKS, issuer=ISSUER, client_id=CLIENT)


def test_a_logout_token_from_mocert_for_this_client_is_taken():
    assert _verify(_token())["sid"] == "sid-1"
    assert _verify(_token(aud=[CLIENT, "other"], sid=None))["sub"] == "s"


# Each token is made when its test runs (a lambda): made at collection, its iat and exp would be minutes
# old by the time a long suite gets to it.
@pytest.mark.parametrize(("token", "why"), [
    (lambda: _token(header={"typ": "JWT"}), "typ"),  # an ID token must never pass for a logout token
    (lambda: _token(iss="https://elsewhere.example"), "iss"),
    (lambda: _token(aud="another-site"), "aud"),
    (lambda: _token(exp=int(time.time()) - 600), "expired"),
    (lambda: _token(iat=int(time.time()) + 600), "iat"),
    (lambda: _token(events={"urn:other": {}}), "event"),
    (lambda: _token(nonce="n"), "nonce"),
    (lambda: _token(jti=None), "jti"),
    (lambda: _token(sid=None, sub=None), "neither"),
    (lambda: "", "no logout_token"),
], ids=["typ", "iss", "aud", "expired", "iat", "event", "nonce", "jti", "neither", "empty"])
def test_what_is_not_a_valid_logout_token_is_refused(token, why):
    with pytest.raises(InvalidLogoutToken, match=why):
        _verify(token())


def test_a_token_signed_by_a_key_not_named_is_an_unknown_key_to_fetch_again_for_and_a_forged_one_is_not():
    rotated = RSAKey.generate_key(2048, parameters={"kid": "k2", "alg": "RS256"})
    with pytest.raises(UnknownKey):
        _verify(_token(key=rotated, header={"kid": "k2"}))
    forged = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"})  # MoCert's kid, another key
    with pytest.raises(InvalidLogoutToken, match="signature") as refused:
        _verify(_token(key=forged))
    assert not isinstance(refused.value, UnknownKey)
    with pytest.raises(InvalidLogoutToken, match="not a signed JWT"):
        _verify("garbage")


def test_the_store_ends_a_session_by_sid_or_every_earlier_one_of_a_person_and_takes_each_jti_once(tmp_path):
    store = Store(tmp_path / "m.db")
    now = time.time()
    assert not store.oidc_session_ended(issuer=ISSUER, sid="sid-1", sub="s", logged_in_at=now - 10)
    assert store.end_oidc_session(issuer=ISSUER, sid="sid-1", sub="s", jti="j-1", expires_at=now + 60, now=now)
    assert store.oidc_session_ended(issuer=ISSUER, sid="sid-1", sub="s", logged_in_at=now - 10)
    assert not store.oidc_session_ended(issuer=ISSUER, sid="sid-2", sub="s", logged_in_at=now - 10)  # another one
    # Replayed: refused, nothing more ended.
    assert not store.end_oidc_session(issuer=ISSUER, sid="sid-2", sub="s", jti="j-1", expires_at=now + 60, now=now)
    assert not store.oidc_session_ended(issuer=ISSUER, sid="sid-2", sub="s", logged_in_at=now - 10)
    # By sub alone: the person's logins begun before it end; a later login does not.
    assert store.end_oidc_session(issuer=ISSUER, sid=None, sub="t", jti="j-2", expires_at=now + 60, now=now)
    assert store.oidc_session_ended(issuer=ISSUER, sid=None, sub="t", logged_in_at=now - 1)
    assert not store.oidc_session_ended(issuer=ISSUER, sid=None, sub="t", logged_in_at=now + 1)
