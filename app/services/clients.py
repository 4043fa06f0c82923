"""Relying parties (OpenID Connect clients): registering, editing, rotating secrets, disabling.

One place for the rules, used by ``flask clients`` and the administration console alike. Secrets are
random, shown once, and kept only as a SHA-256 hash; each change is audited with its actor and reason.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import urlsplit

from sqlalchemy import select

from ..audit import Tags, record
from ..extensions import db
from ..models import OidcClient, utcnow
from ..oidc import claims as oidc_claims
from ..oidc import keys as oidc_keys
from .refusals import Refusal
from .tokens import digest, new_token

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
    backchannel_logout_uri: object = None,
    backchannel_logout_session_required: bool = False,
    reason: str | None = None,
) -> tuple[OidcClient, str | None]:
    """Register a client (committed). Returns it and its secret, which exists nowhere else afterwards."""
    method = _choice(token_endpoint_auth_method, AUTH_METHODS, "token_endpoint_auth_method")
    if (method == "private_key_jwt") != (jwks is not None):
        raise _invalid("jwks", "jwks_method")
    if jwks is not None:
        try:
            oidc_keys.check_client_jwks(jwks)
        except ValueError as exc:
            raise _invalid("jwks", "jwks_keys", error=str(exc)[:200]) from None
    uris = _uris(redirect_uris, "redirect_uris", required=True)
    allowed = _scopes(scopes, allow_national_id)
    try:
        sector = sector or oidc_claims.sector_of(uris)
    except ValueError:
        raise _invalid("sector", "sector") from None
    # Hex: a random id never starts with "-", which a command line would read as an option.
    client_id = client_id or secrets.token_hex(16)
    if not CLIENT_ID.fullmatch(client_id):
        raise _invalid("client_id", "client_id")
    if db.session.scalar(select(OidcClient.id).where(OidcClient.client_id == client_id)) is not None:
        raise Refusal("client_exists")
    secret = None if method in ("none", "private_key_jwt") else new_token()
    client = OidcClient(
        client_id=client_id,
        client_secret_hash=digest(secret) if secret else None,
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
        backchannel_logout_uri=_backchannel_uri(backchannel_logout_uri),
        backchannel_logout_session_required=bool(backchannel_logout_session_required),
    )
    db.session.add(client)
    record(Tags.OIDC_CLIENT_ADDED, actor=actor, client=client_id, name=client.name, auth_method=method, reason=reason)
    db.session.commit()
    return client, secret


EDITABLE = ("name", "redirect_uris", "post_logout_redirect_uris", "allowed_scopes", "allow_national_id",
            "allow_card_login", "backchannel_logout_uri", "backchannel_logout_session_required")


def update(client: OidcClient, changes: dict, *, actor: str, reason: str) -> OidcClient:
    """Change what ``EDITABLE`` names. The sector stays: pairwise subjects must not change under a site."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise _invalid(sorted(unknown)[0], "fixed")
    new = {}
    if "name" in changes:
        new["name"] = _name(changes["name"])
    if "redirect_uris" in changes:
        new["redirect_uris"] = _uris(changes["redirect_uris"], "redirect_uris", required=True)
    if "post_logout_redirect_uris" in changes:
        new["post_logout_redirect_uris"] = _uris(changes["post_logout_redirect_uris"], "post_logout_redirect_uris")
    if "backchannel_logout_uri" in changes:
        new["backchannel_logout_uri"] = _backchannel_uri(changes["backchannel_logout_uri"])
    for flag in ("allow_national_id", "allow_card_login", "backchannel_logout_session_required"):
        if flag in changes:
            if not isinstance(changes[flag], bool):
                raise _invalid(flag, "yes_or_no")
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
        raise Refusal("client_has_no_secret")
    secret = new_token()
    client.client_secret_hash = digest(secret)
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
        raise Refusal("client_unknown")
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
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "backchannel_logout_session_required": client.backchannel_logout_session_required,
        "created_at": client.created_at.isoformat(),
        "disabled_at": client.disabled_at.isoformat() if client.disabled_at else None,
    }


# -- validation -----------------------------------------------------------------------------------------


def _invalid(field: str, case: str, **params: object) -> Refusal:
    """``invalid_<field>``, the field named in the body too; ``case`` says what is wrong with it."""
    return Refusal(f"invalid_{field}", case=f"client_{case}", field=field, **params)


def _choice(value: object, choices: tuple[str, ...], field: str) -> str:
    if value not in choices:
        raise _invalid(field, "choice", choices=", ".join(choices))
    return value


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > NAME_MAX:
        raise _invalid("name", "name", max=NAME_MAX)
    return value.strip()


def _uris(value: object, field: str, *, required: bool = False) -> list[str]:
    """Exact-match URIs: absolute, no fragment, HTTPS except on this machine's loopback names."""
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value) or len(value) > URIS_MAX:
        raise _invalid(field, "uri_list")
    uris = list(dict.fromkeys(v.strip() for v in value if v.strip()))
    if required and not uris:
        raise _invalid(field, "no_redirect_uri")
    for uri in uris:
        try:
            parts = urlsplit(uri)
            hostname = parts.hostname
        except ValueError:  # such as an unclosed IPv6 bracket
            hostname = None
        secure = hostname and (parts.scheme == "https" or (parts.scheme == "http" and hostname in LOOPBACK_HOSTS))
        if not secure or parts.fragment or len(uri) > 2000:
            raise _invalid(field, "insecure_uri", uri=uri[:200])
    return uris


def _backchannel_uri(value: object) -> str | None:
    """One URI checked as the redirect URIs are (Back-Channel Logout §2.2: absolute, no fragment; HTTPS but on
    loopback), or None for none (empty or absent)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value.split()) != 1:
        raise _invalid("backchannel_logout_uri", "one_uri")
    return _uris([value], "backchannel_logout_uri")[0]


def _scopes(value: object, allow_national_id: bool) -> list[str]:
    if value is None:
        value = list(oidc_claims.DEFAULT_CLIENT_SCOPES)
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise _invalid("allowed_scopes", "scope_list")
    scopes = list(dict.fromkeys(value))
    if allow_national_id and "national_id" not in scopes:
        scopes.append("national_id")
    if "national_id" in scopes and not allow_national_id:
        raise _invalid("allowed_scopes", "national_id_scope")
    if set(scopes) - set(oidc_claims.SCOPES_SUPPORTED) or "openid" not in scopes:
        raise _invalid("allowed_scopes", "scopes_supported", scopes=", ".join(oidc_claims.SCOPES_SUPPORTED))
    return scopes
