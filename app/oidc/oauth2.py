"""All of the Authlib wiring in one place: the grants, client authentication, storage, the ID token.

``create_server(app)`` builds one authorization server per application (in ``create_app``, through
``oidc.init_app``), its clients looked up by :func:`query_client`; the views in ``routes`` call it and stay
thin. Codes and tokens are stored only as their SHA-256 (``tokens.digest``).
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

from authlib.integrations.flask_oauth2 import AuthorizationServer as FlaskAuthorizationServer
from authlib.integrations.flask_oauth2 import ResourceProtector as FlaskResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    InsecureTransportError,
    InvalidClientError,
    InvalidRequestError,
    MissingAuthorizationError,
    OAuth2Request,
    UnsupportedResponseTypeError,
    UnsupportedTokenTypeError,
    grants,
)
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDJWTAuthenticationRequest
from authlib.oidc.core import grants as oidc_grants
from authlib.oidc.core.util import create_half_hash
from flask import Flask, current_app
from flask import request as flask_request
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager

from ..audit import Tags, record
from ..extensions import db
from ..models import (
    Account,
    AuthSession,
    Device,
    OidcAuthorizationCode,
    OidcClient,
    OidcClientAssertion,
    OidcToken,
    utcnow,
)
from .. import wiring
from ..services.card_login import device_still_trusted
from ..services.tokens import digest, new_token
from . import claims as oidc_claims
from . import national_id as oidc_national_id
from .keys import KeyRing

CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


def key_ring() -> KeyRing:
    """The signing keys, read at startup (``wiring``) and again when ``oidc rotate-key`` adds one."""
    return wiring.parts().oidc_keys.get()


def issuer() -> str:
    return current_app.config["PUBLIC_URL"]


def query_client(client_id: str) -> OidcClient | None:
    """A client that may act now (a disabled client cannot authorize, get tokens or use them): a read-only
    copy from the process's directory (``services/client_directory.py``)."""
    return wiring.parts().clients.active(client_id)


def subject_for(account: Account, client: OidcClient) -> str:
    return oidc_claims.subject(
        account.id,
        subject_type=client.subject_type,
        sector=client.sector,
        pairwise_key=current_app.config["OIDC_PAIRWISE_KEY"],
    )


def user_info(account: Account, client: OidcClient, scope: str, national_id: str | None = None) -> dict:
    """``sub`` and the granted claims; ``national_id``: the full ID confirmed for this login, if any."""
    claims = oidc_claims.user_claims(
        account, scope_to_list(scope), allow_national_id=client.allow_national_id, national_id=national_id
    )
    return {"sub": subject_for(account, client), **claims}


def save_token(token: dict, request) -> None:
    """Store a token response (hashed; committed with the response). With a refresh, the new token keeps its
    family's origin.

    A national ID sealed for the code (or the refreshed token) moves to the new token, sealed for it, and
    leaves the origin; this response's ID token gets it from ``request.national_id`` (memory only).
    """
    client, account = request.client, request.user
    origin = request.authorization_code or request.refresh_token
    now = utcnow()
    refresh = token.get("refresh_token")
    national_id = None
    if origin.national_id_sealed is not None:
        if oidc_national_id.releasable(client, token.get("scope", "")):
            purpose = oidc_national_id.CODE if request.authorization_code else oidc_national_id.TOKEN
            national_id = oidc_national_id.unseal(origin, purpose)
        origin.national_id_sealed = None  # it moves to the new token, or goes if the scope was narrowed
    request.national_id = national_id
    row = OidcToken(
        client_id=client.id,
        account_id=account.id,
        auth_session_id=origin.auth_session_id,
        auth_method=origin.auth_method,
        authorization_code_id=origin.id if request.authorization_code else origin.authorization_code_id,
        access_token_hash=digest(token["access_token"]),
        refresh_token_hash=digest(refresh) if refresh else None,
        scope=token.get("scope", ""),
        issued_at=now,
        expires_at=now + current_app.config["OIDC_TOKEN_TTL"],
        refresh_expires_at=now + current_app.config["OIDC_REFRESH_TOKEN_TTL"] if refresh else None,
    )
    if national_id is not None:
        row.national_id_sealed = oidc_national_id.seal(
            national_id, purpose=oidc_national_id.TOKEN, client_id=client.id, account_id=account.id
        )
    db.session.add(row)
    record(
        Tags.OIDC_TOKEN_ISSUED,
        account=account,
        client=client.client_id,
        grant=request.payload.grant_type,
        refresh_token=bool(refresh),
        auth_session=row.auth_session_id,
    )


def revoke_family(code_id: int) -> int:
    """Revoke every token that came from one authorization code (refreshes included)."""
    result = db.session.execute(
        update(OidcToken)
        .where(OidcToken.authorization_code_id == code_id, OidcToken.revoked_at.is_(None))
        .values(revoked_at=utcnow(), national_id_sealed=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


class TokenGenerator(BearerTokenGenerator):
    """Refresh tokens only when ``offline_access`` was granted (for public and confidential clients)."""

    def generate(self, grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True):
        include = include_refresh_token and "offline_access" in scope_to_list(scope or "")
        return super().generate(grant_type, client, user, scope, expires_in, include)


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only; a public client must use it (checked already at /authorize)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        request = grant.request
        challenge = request.payload.data.get("code_challenge")
        if not challenge and grant.request.client.is_public:
            raise InvalidRequestError("A public client must send a PKCE 'code_challenge' (S256).")
        if challenge and request.payload.data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256.")
        return super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    @staticmethod
    def validate_authorization_redirect_uri(request, client) -> str:
        # Authlib quotes an unregistered URI into the error's description, and refuses its own error
        # (ValueError, a 500) when the URI holds " or \ or non-ASCII. Say it without quoting it.
        uri = request.payload.redirect_uri
        if uri and not client.check_redirect_uri(uri):
            raise InvalidRequestError("The redirect URI is not registered for this client.")
        return grants.AuthorizationCodeGrant.validate_authorization_redirect_uri(request, client)

    def generate_authorization_code(self) -> str:
        # Authlib's generate_token draws each character with a SystemRandom call of its own (48 reads of the
        # system's randomness a code); one read of 32 bytes is as unguessable (as the tokens, below).
        return new_token()

    def save_authorization_code(self, code: str, request) -> None:
        account, client = request.user, request.client
        auth_session = account.auth_session
        acr, amr = oidc_claims.acr_amr(auth_session.method)
        data = request.payload.data
        now = utcnow()
        # Set by the consent view when the person confirmed their national ID for this authorization.
        national_id = getattr(request, "confirmed_national_id", None)
        if national_id is not None and oidc_national_id.releasable(client, request.scope):
            sealed = oidc_national_id.seal(
                national_id, purpose=oidc_national_id.CODE, client_id=client.id, account_id=account.id
            )
        else:
            sealed = None
        db.session.add(
            OidcAuthorizationCode(
                code_hash=digest(code),
                client_id=client.id,
                account_id=account.id,
                auth_session_id=auth_session.id,
                auth_method=auth_session.method,
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope,
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                auth_time=auth_session.created_at,
                acr=acr,
                amr=amr,
                created_at=now,
                expires_at=now + current_app.config["OIDC_CODE_TTL"],
                national_id_sealed=sealed,
            )
        )
        record(Tags.OIDC_LOGIN_SUCCESS, account=account, client=client.client_id, method=auth_session.method)

    def query_authorization_code(self, code: str, client: OidcClient) -> OidcAuthorizationCode | None:
        """Consume the code atomically, reading it in the same statement. A second use revokes what the first
        one obtained (RFC 6749 §4.1.2). The consumption is committed with the token response, or with its
        error (``AuthorizationServer.create_token_response``): a code that failed its checks is spent too."""
        if not isinstance(code, str):
            return None
        code_hash, now = digest(code), utcnow()
        row = db.session.scalars(
            update(OidcAuthorizationCode)
            .where(
                OidcAuthorizationCode.code_hash == code_hash,
                OidcAuthorizationCode.client_id == client.id,
                OidcAuthorizationCode.used_at.is_(None),
            )
            .values(used_at=now)
            .returning(OidcAuthorizationCode)
            .execution_options(synchronize_session=False)
        ).one_or_none()
        if row is not None:
            return row if row.expires_at > now else None
        used = db.session.scalar(
            select(OidcAuthorizationCode).where(
                OidcAuthorizationCode.code_hash == code_hash, OidcAuthorizationCode.client_id == client.id
            )
        )
        if used is not None:
            revoked = revoke_family(used.id)
            record(
                Tags.OIDC_CODE_REUSED,
                account=db.session.get(Account, used.account_id),
                client=client.client_id,
                tokens_revoked=revoked,
            )
            db.session.commit()
        return None

    def delete_authorization_code(self, authorization_code) -> None:
        pass  # consumed in query_authorization_code; the row stays to recognise a replay

    def authenticate_user(self, authorization_code: OidcAuthorizationCode) -> Account | None:
        """The code's person, unless they were locked, the phone they logged in with was stopped, or the
        session the code came from ended (a logout: the sites it logged in to are told so, and an ID token
        of it must not come after), in the seconds between the code and its exchange (then: invalid_grant,
        no ID token)."""
        return db.session.scalar(
            select(Account)
            .join(AuthSession, AuthSession.account_id == Account.id)
            .outerjoin(Device, AuthSession.device_id == Device.id)
            .where(
                AuthSession.id == authorization_code.auth_session_id,
                AuthSession.ended_at.is_(None),
                Account.id == authorization_code.account_id,
                Account.locked_at.is_(None),
                device_still_trusted(),
            )
        )


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """Rotation: each refresh token works once; presenting a used one revokes its whole family."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> OidcToken | None:
        if not isinstance(refresh_token, str):
            return None
        row = db.session.scalar(_live_tokens().where(OidcToken.refresh_token_hash == digest(refresh_token)))
        if row is None or row.client_id != self.request.client.id:
            return None
        now = utcnow()
        used = db.session.execute(
            update(OidcToken)
            .where(OidcToken.id == row.id, OidcToken.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if used != 1:  # rotated out or revoked: someone holds a copy
            if row.authorization_code_id is not None:
                revoke_family(row.authorization_code_id)
            db.session.commit()
            return None
        db.session.commit()
        return row if row.refresh_expires_at and row.refresh_expires_at > now else None

    def authenticate_user(self, refresh_token: OidcToken) -> Account | None:
        return db.session.get(Account, refresh_token.account_id)

    def revoke_old_credential(self, refresh_token: OidcToken) -> None:
        pass  # already revoked, atomically, in authenticate_refresh_token


class OpenIDCode(oidc_grants.OpenIDCode):
    def exists_nonce(self, nonce: str, request) -> bool:
        # Authlib validates a request twice on its way to a code (the consent grant, then the response): one
        # read answers both.
        seen = getattr(request, "mocert_nonce_seen", None)
        if seen is not None and seen[0] == nonce:
            return seen[1]
        client = query_client(request.payload.client_id)
        found = bool(
            client
            and db.session.scalar(
                select(
                    exists().where(OidcAuthorizationCode.client_id == client.id, OidcAuthorizationCode.nonce == nonce)
                )
            )
        )
        request.mocert_nonce_seen = (nonce, found)
        return found

    def encode_id_token(self, token: dict, request) -> str:
        national_id = getattr(request, "national_id", None)  # set by save_token, which runs first
        return id_token(request.client, request.user, request.authorization_code, token, national_id=national_id)


def id_token(
    client: OidcClient, account: Account, code: OidcAuthorizationCode, token: dict, *, national_id: str | None = None
) -> str:
    key = key_ring().signing_key(client.id_token_signed_response_alg)
    now = int(time.time())
    payload = {
        "iss": issuer(),
        "aud": client.client_id,
        "iat": now,
        "exp": now + int(current_app.config["OIDC_TOKEN_TTL"].total_seconds()),
        "auth_time": code.get_auth_time(),
        "acr": code.acr,
        "amr": code.get_amr(),
        **user_info(account, client, code.scope, national_id),
    }
    if code.nonce:
        payload["nonce"] = code.nonce
    # Every client's: one that registers a back-channel logout URI later is told of the end of sessions that
    # began before, by a sid it has seen (a sid is the client's own: sites cannot match theirs up).
    payload["sid"] = session_id_for(client, code.auth_session_id)
    if token.get("access_token"):
        payload["at_hash"] = create_half_hash(token["access_token"], key.alg).decode()
    header = {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
    return jwt.encode(header, payload, key.key, [key.alg])


BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def session_id_for(client: OidcClient, auth_session_id: int) -> str:
    return oidc_claims.session_id(auth_session_id, client_id=client.client_id,
                                  key=current_app.config["OIDC_PAIRWISE_KEY"])


def logout_token(client: OidcClient, account_id: int, auth_session_id: int) -> str:
    """A Back-Channel Logout token (§2.4) for the end of one session at one client: signed as its ID tokens
    are, ``typ`` ``logout+jwt`` (§2.4: so it is never taken for an ID token), ``sid`` and the ``sub`` the
    client knows, the event, a fresh ``jti``, and never a ``nonce``."""
    key = key_ring().signing_key(client.id_token_signed_response_alg)
    now = int(time.time())
    payload = {
        "iss": issuer(),
        "aud": client.client_id,
        "iat": now,
        "exp": now + int(current_app.config["BACKCHANNEL_LOGOUT_TOKEN_TTL"].total_seconds()),
        "jti": new_token(),
        "sub": oidc_claims.subject(account_id, subject_type=client.subject_type, sector=client.sector,
                                   pairwise_key=current_app.config["OIDC_PAIRWISE_KEY"]),
        "sid": session_id_for(client, auth_session_id),
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    header = {"alg": key.alg, "kid": key.kid, "typ": "logout+jwt"}
    return jwt.encode(header, payload, key.key, [key.alg])


class NoRequestObjects(OpenIDJWTAuthenticationRequest):
    """OIDC Core §6: neither ``request`` nor ``request_uri`` is taken (discovery says so); Authlib answers
    ``request_not_supported`` / ``request_uri_not_supported``. Per §3.1.2.6 the error goes to the redirect URI
    (with the state) only when the client and that URI are registered; otherwise the view shows its error page.
    Requests without either parameter are left to the grant, as before."""

    def __init__(self) -> None:
        super().__init__(support_request=False, support_request_uri=False)

    def parse_authorization_request(self, authorization_server, request) -> None:
        data = request.payload.data
        if "request" not in data and "request_uri" not in data:
            return
        try:
            super().parse_authorization_request(authorization_server, request)
        except OAuth2Error as error:
            error.redirect_uri = _error_redirect_uri(request)
            raise


def _error_redirect_uri(request) -> str | None:
    """Where an authorization error may go: only a redirect URI registered for a client that exists
    (RFC 6749 §4.1.2.1); ``None`` means the error page. Never quotes the URI into an error: Authlib's
    errors refuse descriptions holding " or \\ (a ValueError, a 500)."""
    client = query_client(request.payload.client_id) if request.payload.client_id else None
    if client is None:
        return None
    requested = request.payload.redirect_uri
    if requested:
        return requested if client.check_redirect_uri(requested) else None
    return client.get_default_redirect_uri()


class PrivateKeyJwt(JWTBearerClientAssertion):
    """``private_key_jwt``: an assertion signed with a key from the client's registered JWKS."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def get_audiences(self) -> list[str]:
        base = issuer()
        return [base, f"{base}/oauth/token", f"{base}/oauth/revoke"]

    def resolve_client_public_key(self, client: OidcClient):
        if not client.jwks:
            raise InvalidClientError(description="The client has no registered keys.")
        return KeySet.import_key_set(client.jwks)

    def validate_jti(self, claims, jti) -> bool:
        client = query_client(claims["sub"])
        expires = claims.get("exp")
        if client is None or not isinstance(jti, str) or not isinstance(expires, int):
            return False
        db.session.add(
            OidcClientAssertion(
                client_id=client.id, jti=jti[:255], expires_at=datetime.fromtimestamp(expires, timezone.utc)
            )
        )
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            return False
        return True


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> OidcToken | None:
        hashed = digest(token_string)
        return db.session.scalar(
            select(OidcToken).where(or_(OidcToken.access_token_hash == hashed, OidcToken.refresh_token_hash == hashed))
        )

    def revoke_token(self, token: OidcToken, request) -> None:
        """Either token of a pair revokes both (the pair is one grant)."""
        if token.revoked_at is None:
            token.revoked_at = utcnow()
            token.national_id_sealed = None
            record(Tags.OIDC_TOKEN_REVOKED, account=token.account, client=request.client.client_id, token=token.id)
            db.session.commit()


class BearerValidator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> OidcToken | None:
        """One query: the token, its (enabled) client and its account."""
        return db.session.scalar(
            _live_tokens()
            .options(contains_eager(OidcToken.client), contains_eager(OidcToken.account))
            .where(OidcToken.access_token_hash == digest(token_string))
        )


class NoCredentials(MissingAuthorizationError):
    """RFC 6750 §3.1: a request without any credentials (or with another scheme) hears a bare
    ``WWW-Authenticate: Bearer``, no error code; the JSON body still says what is missing."""

    description = "An access token is required (Authorization: Bearer, or access_token in a form body)."

    def __init__(self) -> None:
        super().__init__(auth_type="Bearer")

    def get_headers(self):
        return [*OAuth2Error.get_headers(self), ("WWW-Authenticate", "Bearer")]


class TwoCredentials(InvalidRequestError):
    """RFC 6750 §2: a client must not send the token more than one way."""

    def get_headers(self):
        challenge = f'Bearer error="{self.error}", error_description="{self.get_error_description()}"'
        return [*super().get_headers(), ("WWW-Authenticate", challenge)]


class ResourceProtector(FlaskResourceProtector):
    """Authlib's, with the token taken as RFC 6750 allows: the Authorization header (§2.1) or an
    ``access_token`` in a form-encoded POST body (§2.2); never the query string (§2.3, not offered)."""

    def parse_request_authorization(self, request):
        body_token = _form_body_token()
        if request.headers.get("Authorization"):
            if body_token is not None:
                raise TwoCredentials("The access token was sent both in the header and in the body.")
            try:
                return super().parse_request_authorization(request)
            except UnsupportedTokenTypeError:
                raise NoCredentials() from None
        if body_token is None:
            raise NoCredentials()
        return self.get_token_validator(BearerValidator.TOKEN_TYPE), body_token


def _form_body_token() -> str | None:
    """``access_token`` of a single-part form-encoded body of a request that is not GET (RFC 6750 §2.2).

    Read from Flask's request: the one Authlib's protector passes on carries a JSON payload, not the form."""
    if flask_request.method == "GET" or flask_request.mimetype != "application/x-www-form-urlencoded":
        return None
    return flask_request.form.get("access_token")


def _live_tokens():
    """Tokens that may still be used: an enabled client, an unlocked account, and not obtained through a
    phone that has since been suspended or revoked (the admin's action counts from the next request)."""
    return (
        select(OidcToken)
        .join(OidcToken.client)
        .join(OidcToken.account)
        .outerjoin(AuthSession, OidcToken.auth_session_id == AuthSession.id)
        .outerjoin(Device, AuthSession.device_id == Device.id)
        .where(OidcClient.disabled_at.is_(None), Account.locked_at.is_(None), device_still_trusted())
    )


def _expires_in(client, grant_type) -> int:
    return int(current_app.config["OIDC_TOKEN_TTL"].total_seconds())


# What RFC 6749 §4.1.2.1 allows in an error description: printable ASCII but " and \.
_DESCRIBABLE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")


class UnsupportedResponseType(UnsupportedResponseTypeError):
    """``unsupported_response_type`` without quoting the response type back."""

    def get_error_description(self) -> str:
        return "The response type is not supported."


class AuthorizationServer(FlaskAuthorizationServer):
    """Authlib's server, with two of its refusals made OAuth error answers instead of 500s:

    * an unknown ``response_type`` holding characters that an error description may not (``"``, ``\\``,
      non-ASCII) is ``unsupported_response_type`` like any other: Authlib quotes the value into its error's
      description, and its error refuses that with a ValueError;
    * plain http to a host other than localhost is 400 ``insecure_transport``: the token and revocation
      endpoints raise it before their error handling.
    """

    def create_oauth2_request(self, request):
        """Flask's request, unless the caller built one (``direct_code``: a stored authorize request)."""
        if isinstance(request, OAuth2Request):
            return request
        return super().create_oauth2_request(request)

    def create_authorization_response(self, request=None, grant_user=None, grant=None):
        """The redirect back to the site, its code committed (with whatever the caller's transaction holds)
        before the browser is sent there."""
        response = super().create_authorization_response(request, grant_user, grant)
        db.session.commit()
        return response

    def create_token_response(self, request=None):
        """The token response, committed before it is sent: the code's consumption with the tokens, or with
        the error that refused them (one commit either way; a replayed code's revocations are committed as soon
        as they are found)."""
        try:
            response = super().create_token_response(request)
        except InsecureTransportError as error:
            response = self.handle_error_response(None, error)
        db.session.commit()
        return response

    def create_endpoint_response(self, name, request=None):
        try:
            return super().create_endpoint_response(name, request)
        except InsecureTransportError as error:
            return self.handle_error_response(None, error)

    def get_authorization_grant(self, request):
        response_type = request.payload.response_type
        if response_type and not _DESCRIBABLE.fullmatch(response_type):
            raise UnsupportedResponseType(
                response_type, redirect_uri=_error_redirect_uri(request), state=request.payload.state
            )
        return super().get_authorization_grant(request)


def create_server(app: Flask) -> tuple[AuthorizationServer, ResourceProtector]:
    server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
    server.register_token_generator(
        "default", TokenGenerator(lambda **kw: new_token(), lambda **kw: new_token(), _expires_in)
    )
    server.scopes_supported = list(oidc_claims.SCOPES_SUPPORTED)
    server.register_client_auth_method(PrivateKeyJwt.CLIENT_AUTH_METHOD, PrivateKeyJwt())
    server.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True), OpenIDCode(require_nonce=False)])
    server.register_grant(RefreshTokenGrant)
    server.register_endpoint(Revocation)
    server.register_extension(NoRequestObjects())
    protector = ResourceProtector()
    protector.register_token_validator(BearerValidator())
    return server, protector


__all__ = ["create_server", "id_token", "key_ring", "logout_token", "query_client", "user_info"]
