"""Agencies (需用機關) of the TW FidO service-provider API: registering, listing, disabling, rotating keys.

One place for the rules, used by ``flask agencies``, the admin console and API, and the agencies' API (each
call finds its agency and key here). An
agency's API key is base64 of 32 random bytes, shown once. Unlike an OIDC client's secret it cannot be kept
as a hash: MoCert computes idp_checksum with it and checks sp_checksum against it. So it is sealed with
AES-256-GCM under the configured key-encryption key (MOCERT_AGENCY_KEY_ENCRYPTION_KEY), bound to the
agency's sp_service_id so that a sealed key copied to another row does not open there. Each change is
audited in the transaction that makes it.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import secrets
import string
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select

from twfido.checksum import KEY_BYTES

from ..audit import Tags, record
from ..extensions import db
from ..models import Agency, utcnow
from .refusals import Refusal

NAME_MAX = 200
URL_MAX = 2000
ALLOWED_IPS_MAX = 50
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
# "SP" and 12 upper-case letters and digits: 62 bits, URL-safe, never read as a command-line option.
SERVICE_ID_PREFIX = "SP"
SERVICE_ID_ALPHABET = string.ascii_uppercase + string.digits
SERVICE_ID_LENGTH = 12
IV_BYTES = 12
SEAL_CONTEXT = b"mocert:agency-api-key:v1:"  # the associated data: this purpose and the agency's id


class AgencyKeyUnreadable(Exception):
    """A sealed API key that does not open under the configured key-encryption key (another key, or an
    altered row): a fault of the installation, not of the agency's request."""


def key_encryption_key(encoded: object) -> bytes:
    """MOCERT_AGENCY_KEY_ENCRYPTION_KEY's 32 bytes from its base64; ValueError saying what is wrong."""
    if not isinstance(encoded, str) or not encoded.strip():
        raise ValueError("must be set to base64 of 32 random bytes (openssl rand -base64 32)")
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be base64 of 32 random bytes (openssl rand -base64 32), not base64 at all") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"must be base64 of 32 random bytes (openssl rand -base64 32), not of {len(key)} bytes")
    return key


class Agencies:
    """Built once (``app/wiring.py``) with the key-encryption key."""

    def __init__(self, key_encryption_key: bytes) -> None:
        if len(key_encryption_key) != KEY_BYTES:
            raise ValueError("the key-encryption key must be 32 bytes")
        self._aead = AESGCM(key_encryption_key)

    @classmethod
    def of(cls, encoded: object) -> Agencies:
        return cls(key_encryption_key(encoded))

    def add(
        self, *, actor: str, name: object, allowed_ips: object = (), callback_url: object = None,
        reason: str | None = None,
    ) -> tuple[Agency, str]:
        """Register an agency (committed). Returns it and its API key (base64), which exists nowhere else
        in the clear afterwards."""
        name, networks, url = _name(name), _allowed_ips(allowed_ips), _callback_url(callback_url)
        sp_service_id = self._new_service_id()
        api_key = os.urandom(KEY_BYTES)
        agency = Agency(
            sp_service_id=sp_service_id,
            name=name,
            api_key_sealed=self._seal(api_key, sp_service_id),
            allowed_ips=networks,
            callback_url=url,
        )
        db.session.add(agency)
        record(Tags.AGENCY_ADDED, actor=actor, agency=sp_service_id, name=name, allowed_ips=networks,
               callback_url=url, reason=reason)
        db.session.commit()
        return agency, base64.b64encode(api_key).decode("ascii")

    def rotate_key(self, agency: Agency, *, actor: str, reason: str | None = None) -> str:
        """A new API key at once; the old one stops working now (shown once, like the first). A disabled
        agency gets none: its calls are refused anyway, and a key made for it is one more to leak."""
        if agency.disabled_at is not None:
            raise Refusal("agency_disabled", sp_service_id=agency.sp_service_id)
        api_key = os.urandom(KEY_BYTES)
        agency.api_key_sealed = self._seal(api_key, agency.sp_service_id)
        agency.key_rotated_at = utcnow()
        record(Tags.AGENCY_KEY_ROTATED, actor=actor, agency=agency.sp_service_id, reason=reason)
        db.session.commit()
        return base64.b64encode(api_key).decode("ascii")

    def disable(self, agency: Agency, *, actor: str, reason: str | None = None) -> Agency:
        """The agency's calls are refused from now on (its tickets with them: the API checks this first)."""
        if agency.disabled_at is None:
            agency.disabled_at = utcnow()
            record(Tags.AGENCY_DISABLED, actor=actor, agency=agency.sp_service_id, reason=reason)
            db.session.commit()
        return agency

    def key_of(self, agency: Agency) -> bytes:
        """The agency's 32-byte API key, for sp_checksum and idp_checksum (twfido.checksum)."""
        sealed = bytes(agency.api_key_sealed)
        try:
            return self._aead.decrypt(sealed[:IV_BYTES], sealed[IV_BYTES:], SEAL_CONTEXT + agency.sp_service_id.encode())
        except (InvalidTag, ValueError):
            raise AgencyKeyUnreadable(
                f"agency {agency.sp_service_id}: its API key does not open under MOCERT_AGENCY_KEY_ENCRYPTION_KEY"
            ) from None

    def _seal(self, api_key: bytes, sp_service_id: str) -> bytes:
        iv = os.urandom(IV_BYTES)
        return iv + self._aead.encrypt(iv, api_key, SEAL_CONTEXT + sp_service_id.encode())

    @staticmethod
    def _new_service_id() -> str:
        while True:  # a collision in 62 bits is next to impossible, but the id must be unique, not likely so
            candidate = SERVICE_ID_PREFIX + "".join(secrets.choice(SERVICE_ID_ALPHABET) for _ in range(SERVICE_ID_LENGTH))
            if db.session.scalar(select(Agency.id).where(Agency.sp_service_id == candidate)) is None:
                return candidate


def by_service_id(sp_service_id: object) -> Agency | None:
    """The agency of this sp_service_id, disabled or not (the API tells SPSVCID_NF from a disabled one)."""
    if not isinstance(sp_service_id, str) or not sp_service_id or len(sp_service_id) > 32:
        return None
    return db.session.scalar(select(Agency).where(Agency.sp_service_id == sp_service_id))


def get(sp_service_id: object) -> Agency:
    agency = by_service_id(sp_service_id)
    if agency is None:
        raise Refusal("agency_unknown", sp_service_id=str(sp_service_id)[:40])
    return agency


def list_all() -> list[Agency]:
    return list(db.session.scalars(select(Agency).order_by(Agency.name, Agency.id)))


def allows_address(agency: Agency, address: str | None) -> bool:
    """Whether a call from ``address`` may come from this agency: any, without a list; else one on it."""
    if not agency.allowed_ips:
        return True
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:203.0.113.5 is the IPv4 address a dual-stack socket reports
    return any(ip in ipaddress.ip_network(network) for network in agency.allowed_ips)


def agency_view(agency: Agency) -> dict:
    """What may be shown of an agency: everything but its key."""
    return {
        "sp_service_id": agency.sp_service_id,
        "name": agency.name,
        "allowed_ips": list(agency.allowed_ips),
        "callback_url": agency.callback_url,
        "state": "disabled" if agency.disabled_at else "active",
        "created_at": agency.created_at.isoformat(),
        "disabled_at": agency.disabled_at.isoformat() if agency.disabled_at else None,
        "key_rotated_at": agency.key_rotated_at.isoformat() if agency.key_rotated_at else None,
    }


# -- validation -----------------------------------------------------------------------------------------


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > NAME_MAX:
        raise Refusal("invalid_name", case="agency_name", field="name", max=NAME_MAX)
    return value.strip()


def _allowed_ips(value: object) -> list[str]:
    """Networks in CIDR notation (an address alone is its /32 or /128), normalized, each once. Host bits
    set (203.0.113.5/24) are refused: most likely a typo, and which network was meant cannot be known."""
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise Refusal("invalid_allowed_ips", case="agency_cidr_list", field="allowed_ips")
    if len(value) > ALLOWED_IPS_MAX:
        raise Refusal("invalid_allowed_ips", case="agency_cidr_count", field="allowed_ips", max=ALLOWED_IPS_MAX)
    networks = []
    for text in value:
        try:
            network = ipaddress.ip_network(text.strip(), strict=True)
        except ValueError:
            try:
                meant = ipaddress.ip_network(text.strip(), strict=False)
            except ValueError:
                raise Refusal("invalid_allowed_ips", case="agency_cidr", field="allowed_ips", cidr=text[:60]) from None
            raise Refusal("invalid_allowed_ips", case="agency_cidr_host_bits", field="allowed_ips", cidr=text[:60],
                          network=str(meant)) from None
        if str(network) not in networks:
            networks.append(str(network))
    return networks


def _callback_url(value: object) -> str | None:
    """Where SP-API-WEB-01 posts its signed answer: absolute, no fragment, HTTPS except on this machine's
    loopback names (the rule of OIDC redirect URIs: the answer carries a signed identity)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise Refusal("invalid_callback_url", case="agency_callback_url", field="callback_url", url="")
    url = value.strip()
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:  # such as an unclosed IPv6 bracket
        parts, hostname = None, None
    secure = hostname and (parts.scheme == "https" or (parts.scheme == "http" and hostname in LOOPBACK_HOSTS))
    if not secure or parts.fragment or len(url) > URL_MAX or any(c.isspace() for c in url):
        raise Refusal("invalid_callback_url", case="agency_callback_url", field="callback_url", url=url[:200])
    return url
