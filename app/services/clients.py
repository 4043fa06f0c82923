"""Relying parties (OpenID Connect clients): registering, editing, rotating secrets, disabling.

One place for the rules, used by ``flask clients`` and the administration console alike. Secrets are
random, shown once, and kept only as a SHA-256 hash; each change is audited with its actor and reason.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import urlsplit

from flask_babel import gettext as _
from sqlalchemy import select

from ..audit import Tags, record
from ..errors import ApiError
from ..extensions import db
from ..models import OidcClient, utcnow
from ..oidc import claims as oidc_claims
from ..oidc import keys as oidc_keys
from ..oidc.oauth2 import hash_secret

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
NAME_MAX = 200
URIS_MAX = 20
CLIENT_ID = re.compile(r"[A-Za-z0-9._~][A-Za-z0-9._~-]{0,63}")


def create(
    *,
    actor: str,
    name: object,
    redirect_uris: object,
    post_logout_redirect_uris: object = (),
    scopes: object = None,
    allow_national_id: bool = False,
    allow_card_login: bool = True,
    token_endpoint_auth_method: str = "client_secret_basic",
    jwks: dict | None = None,
    subject_type: str = "pairwise",
    sector: str | None = None,
    id_token_alg: str = "RS256",
    client_id: str | None = None,
    reason: str | None = None,
) -> tuple[OidcClient, str | None]:
    """Register a client (committed). Returns it and its secret, which exists nowhere else afterwards."""
    method = _choice(token_endpoint_auth_method, AUTH_METHODS, "token_endpoint_auth_method")
    if (method == "private_key_jwt") != (jwks is not None):
        raise _invalid("jwks", _("private_key_jwt needs the client's public JWKS, and only it takes one."))
    if jwks is not None:
        try:
            oidc_keys.check_client_jwks(jwks)
        except ValueError as exc:
            raise _invalid("jwks", _("The JWKS is not a set of public keys: %(error)s", error=str(exc)[:200])) from None
    uris = _uris(redirect_uris, "redirect_uris", required=True)
    allowed = _scopes(scopes, allow_national_id)
    try:
        sector = sector or oidc_claims.sector_of(uris)
    except ValueError:
        raise _invalid("sector", _("The redirect URIs have different hosts; give the sector explicitly.")) from None
    # Hex: a random id never starts with "-", which a command line would read as an option.
    client_id = client_id or secrets.token_hex(16)
    if not CLIENT_ID.fullmatch(client_id):
        raise _invalid("client_id", _("A client ID is 1 to 64 letters, digits, dots, underscores or hyphens, "
                                      "not starting with a hyphen."))
    if db.session.scalar(select(OidcClient.id).where(OidcClient.client_id == client_id)) is not None:
        raise ApiError(409, "client_exists", _("A client with this ID exists."))
    secret = None if method in ("none", "private_key_jwt") else secrets.token_urlsafe(32)
    client = OidcClient(
        client_id=client_id,
        client_secret_hash=hash_secret(secret) if secret else None,
        name=_name(name),
        redirect_uris=uris,
        post_logout_redirect_uris=_uris(post_logout_redirect_uris, "post_logout_redirect_uris"),
        allowed_scopes=allowed,
        token_endpoint_auth_method=method,
        jwks=jwks,
        id_token_signed_response_alg=_choice(id_token_alg, tuple(oidc_keys.ALGORITHMS), "id_token_alg"),
        subject_type=_choice(subject_type, ("pairwise", "public"), "subject_type"),
        sector=sector,
        allow_national_id=bool(allow_national_id),
        allow_card_login=bool(allow_card_login),
    )
    db.session.add(client)
    record(Tags.OIDC_CLIENT_ADDED, actor=actor, client=client_id, name=client.name, auth_method=method, reason=reason)
    db.session.commit()
    return client, secret


EDITABLE = ("name", "redirect_uris", "post_logout_redirect_uris", "allowed_scopes", "allow_national_id",
            "allow_card_login")


def update(client: OidcClient, changes: dict, *, actor: str, reason: str) -> OidcClient:
    """Change what ``EDITABLE`` names. The sector stays: pairwise subjects must not change under a site."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise _invalid(sorted(unknown)[0], _("This setting cannot be changed here."))
    new = {}
    if "name" in changes:
        new["name"] = _name(changes["name"])
    if "redirect_uris" in changes:
        new["redirect_uris"] = _uris(changes["redirect_uris"], "redirect_uris", required=True)
    if "post_logout_redirect_uris" in changes:
        new["post_logout_redirect_uris"] = _uris(changes["post_logout_redirect_uris"], "post_logout_redirect_uris")
    for flag in ("allow_national_id", "allow_card_login"):
        if flag in changes:
            if not isinstance(changes[flag], bool):
                raise _invalid(flag, _("This setting is yes or no."))
            new[flag] = changes[flag]
    allow_national_id = new.get("allow_national_id", client.allow_national_id)
    scopes = changes.get("allowed_scopes", [s for s in client.allowed_scopes if s != "national_id"])
    new["allowed_scopes"] = _scopes(scopes, allow_national_id)
    changed = {key: value for key, value in new.items() if getattr(client, key) != value}
    if not changed:
        return client
    record(Tags.OIDC_CLIENT_CHANGED, actor=actor, client=client.client_id, reason=reason,
           changes={key: {"old": getattr(client, key), "new": value} for key, value in changed.items()})
    for key, value in changed.items():
        setattr(client, key, value)
    db.session.commit()
    return client


def rotate_secret(client: OidcClient, *, actor: str, reason: str) -> str:
    """A new secret at once; the old one stops working now (shown once, like the first)."""
    if client.client_secret_hash is None:
        raise ApiError(409, "client_has_no_secret", _("This client authenticates without a shared secret."))
    secret = secrets.token_urlsafe(32)
    client.client_secret_hash = hash_secret(secret)
    record(Tags.OIDC_CLIENT_SECRET_ROTATED, actor=actor, client=client.client_id, reason=reason)
    db.session.commit()
    return secret


def disable(client: OidcClient, *, actor: str, reason: str) -> OidcClient:
    """The client can no longer authorize, get tokens or use them."""
    if client.disabled_at is None:
        client.disabled_at = utcnow()
        record(Tags.OIDC_CLIENT_DISABLED, actor=actor, client=client.client_id, reason=reason)
        db.session.commit()
    return client


def enable(client: OidcClient, *, actor: str, reason: str) -> OidcClient:
    if client.disabled_at is not None:
        client.disabled_at = None
        record(Tags.OIDC_CLIENT_ENABLED, actor=actor, client=client.client_id, reason=reason)
        db.session.commit()
    return client


def get(client_id: str) -> OidcClient:
    client = db.session.scalar(select(OidcClient).where(OidcClient.client_id == client_id))
    if client is None:
        raise ApiError(404, "client_unknown", _("There is no such client."))
    return client


def list_all() -> list[OidcClient]:
    return list(db.session.scalars(select(OidcClient).order_by(OidcClient.name, OidcClient.id)))


def client_view(client: OidcClient) -> dict:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "allowed_scopes": list(client.allowed_scopes),
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "subject_type": client.subject_type,
        "sector": client.sector,
        "allow_national_id": client.allow_national_id,
        "allow_card_login": client.allow_card_login,
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "created_at": client.created_at.isoformat(),
        "disabled_at": client.disabled_at.isoformat() if client.disabled_at else None,
    }


# -- validation -----------------------------------------------------------------------------------------


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(400, f"invalid_{field}", message, field=field)


def _choice(value: object, choices: tuple[str, ...], field: str) -> str:
    if value not in choices:
        raise _invalid(field, _("Choose one of: %(choices)s.", choices=", ".join(choices)))
    return value


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > NAME_MAX:
        raise _invalid("name", _("Give the site a name of at most %(max)d characters.", max=NAME_MAX))
    return value.strip()


def _uris(value: object, field: str, *, required: bool = False) -> list[str]:
    """Exact-match URIs: absolute, no fragment, HTTPS except on this machine's loopback names."""
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value) or len(value) > URIS_MAX:
        raise _invalid(field, _("Give a list of URLs."))
    uris = list(dict.fromkeys(v.strip() for v in value if v.strip()))
    if required and not uris:
        raise _invalid(field, _("Give at least one redirect URI."))
    for uri in uris:
        try:
            parts = urlsplit(uri)
            hostname = parts.hostname
        except ValueError:  # such as an unclosed IPv6 bracket
            hostname = None
        secure = hostname and (parts.scheme == "https" or (parts.scheme == "http" and hostname in LOOPBACK_HOSTS))
        if not secure or parts.fragment or len(uri) > 2000:
            raise _invalid(field, _("%(uri)s is not an HTTPS URL without a fragment.", uri=uri[:200]))
    return uris


def _scopes(value: object, allow_national_id: bool) -> list[str]:
    if value is None:
        value = list(oidc_claims.DEFAULT_CLIENT_SCOPES)
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise _invalid("allowed_scopes", _("Give a list of scopes."))
    scopes = list(dict.fromkeys(value))
    if allow_national_id and "national_id" not in scopes:
        scopes.append("national_id")
    if "national_id" in scopes and not allow_national_id:
        raise _invalid("allowed_scopes", _("The national_id scope needs the client to be allowed the national ID."))
    if set(scopes) - set(oidc_claims.SCOPES_SUPPORTED) or "openid" not in scopes:
        raise _invalid("allowed_scopes", _("Scopes must include openid and be among %(scopes)s.",
                                           scopes=", ".join(oidc_claims.SCOPES_SUPPORTED)))
    return scopes
