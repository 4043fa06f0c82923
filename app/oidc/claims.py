"""What a relying party learns about a person: subject identifiers, claims per scope, acr/amr.

Imports no Flask; the caller passes the pairwise key and the account.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlsplit


def N_(message: str) -> str:
    """Marks a message for extraction; the view translates it (``gettext``) when it shows it."""
    return message


# How the person logged in, keyed by AuthSession.method: (acr, amr per RFC 8176).
AUTHENTICATION_METHODS: dict[str, tuple[str, list[str]]] = {
    "card": ("urn:mocert:acr:card", ["sc", "pin"]),  # smart card + PIN
    "mobile": ("urn:mocert:acr:mobile", ["hwk", "user"]),  # bound phone's key + user verification
}

# The scopes a client may be allowed, the claims each releases, and the words on the consent page.
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "openid": ("sub",),
    "profile": ("name",),
    "email": ("email", "email_verified"),
    "phone": ("phone_number", "phone_number_verified"),
    "national_id": ("national_id", "national_id_masked"),
    "offline_access": (),
}
SCOPES_SUPPORTED = tuple(SCOPE_CLAIMS)
DEFAULT_CLIENT_SCOPES = ("openid", "profile", "email", "phone", "offline_access")

SCOPE_DESCRIPTIONS = {
    "openid": N_("A pseudonymous identifier for you at this site"),
    "profile": N_("Your name"),
    "email": N_("Your email address"),
    "phone": N_("Your mobile number"),
    "national_id": N_("Your national ID number, which you confirm below (and its masked form, A12****789)"),
    "offline_access": N_("Keep access while you are not using the site (until you revoke it)"),
}


NATIONAL_ID_SCOPE = "national_id"


def releases_national_id(client, scopes: list[str]) -> bool:
    """Whether the full ID may go to this client for these scopes: it is allowed it AND the scope was granted."""
    return bool(client.allow_national_id) and NATIONAL_ID_SCOPE in scopes


def acr_amr(method: str) -> tuple[str, list[str]]:
    return AUTHENTICATION_METHODS[method]


def sector_of(redirect_uris: list[str]) -> str:
    """The sector identifier: the host of the redirect URIs (they must share one, else give ``--sector``)."""
    hosts = {urlsplit(uri).hostname or "" for uri in redirect_uris}
    if len(hosts) != 1 or not next(iter(hosts)):
        raise ValueError("the redirect URIs have different hosts; give the sector explicitly")
    return hosts.pop()


def subject(account_id: int, *, subject_type: str, sector: str, pairwise_key: str) -> str:
    """``public``: the same for every client; ``pairwise``: HMAC of the account and the client's sector."""
    if subject_type == "public":
        message = f"public|{account_id}"
    else:
        message = f"pairwise|{sector}|{account_id}"
    digest = hmac.new(pairwise_key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def session_id(auth_session_id: int, *, client_id: str, key: str) -> str:
    """``sid``, the MoCert session as one client knows it (ID token, logout token). Per client, as pairwise
    subjects are: one ``sid`` for every site would let two sites join up who their people are."""
    digest = hmac.new(key.encode(), f"sid|{client_id}|{auth_session_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).rstrip(b"=").decode()


def user_claims(account, scopes: list[str], *, allow_national_id: bool, national_id: str | None = None) -> dict:
    """The claims released for the granted scopes (``sub`` is added by the caller).

    ``national_id`` is the full ID the person confirmed for this login (``national_id.py``): released
    only to a client allowed it that was granted the scope, whoever passes it.
    """
    claims: dict = {}
    if "profile" in scopes:
        claims["name"] = account.name
    if "email" in scopes:
        claims["email"] = account.email
        claims["email_verified"] = account.email_verified
    if "phone" in scopes:
        claims["phone_number"] = account.phone
        claims["phone_number_verified"] = False  # not confirmed by SMS (yet)
    if "national_id" in scopes and allow_national_id:
        claims["national_id_masked"] = account.national_id_masked
        if national_id is not None:  # MoCert keeps only a keyed hash: the person typed it for this login
            claims["national_id"] = national_id
    return claims
