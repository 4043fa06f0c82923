"""The application's parts, built once in ``create_app`` from its configuration and handed to the services.

Whatever a setting can be wrong about (a key that does not load, a trust root that does not parse, an
origin that is not one) fails here, at startup, with a message that names the setting; nothing is built
lazily on a first request. Views reach the parts through :func:`parts`; services get them passed in.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from flask import Flask, current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from config import refuse_to_start
from iccard.card_login import CardLoginVerifier
from iccard.demo_pki import DemoPKI
from iccard.identity_check import IdentityCheckClient
from iccard.origins import origin_of
from iccard.validation import CardCertificateValidator, TrustSettings

from . import webpush
from .invalidation import Invalidations
from .mail import Letters
from .models import OidcClient
from .oidc import direct_code, oauth2
from .oidc.keys import CachedKeyRing
from .services.accounts import Accounts
from .services.agencies import Agencies
from .services.backchannel_logout import BackchannelLogouts
from .services.client_directory import ClientDirectory
from .services.card_login import CardLogins, CardVerifier, LoginSessions, NoTrustedIssuer
from .services.devices import Devices, RelyingParty, trust_policy
from .services.inbox import Inbox
from .services.mobile_certificates import MobileCA, MobileCertificates, StatusUrls
from .services.mobile_login import MobileLogins
from .services.push_notices import PushNotices
from .services.sessions import LoginMarker
from .services.sp_requests import SpRequests
from .services.sp_web import WebRedirects
from .services.tokens import NationalIdHash

log = logging.getLogger(__name__)

T = TypeVar("T")

# The brief's contacts; a deployment names its own in MOCERT_SUPPORT_CONTACTS_FILE (a JSON list).
DEMO_SUPPORT_CONTACTS = (
    {
        "name": "內政部憑證管理中心 MOICA",
        "phone": "0800-080-117",
        "hours": ["【平日】AM 07:00–PM 11:00", "【例假日】AM 08:30–PM 05:30"],
        "url": "https://moica.nat.gov.tw/",
    },
)


@dataclass(frozen=True)
class Parts:
    national_id_hash: NationalIdHash
    login_marker: LoginMarker
    oidc_keys: CachedKeyRing  # the provider's signing keys, read now and again when a key is added
    invalidations: Invalidations  # how the processes tell each other that a cached thing changed
    clients: ClientDirectory  # the OIDC clients, read once per process
    # -- phones: the relying party, the mobile CA, binding and phone login
    relying_party: RelyingParty
    mobile_certificates: MobileCertificates
    devices: Devices
    mobile_logins: MobileLogins
    # -- people: sessions, card login, registration
    login_sessions: LoginSessions
    card_logins: CardLogins
    accounts: Accounts
    support_contacts: tuple[dict, ...]  # shown on the help page
    agencies: Agencies  # of the TW FidO service-provider API, their keys sealed under the configured key
    sp_requests: SpRequests  # the agencies' requests: tickets, polls, and the phones' answers
    push_notices: PushNotices  # Web Push to the phones a request is pushed to (off without a VAPID key)
    inbox: Inbox  # each phone's pushed requests, by its passkey
    sp_web: WebRedirects  # SP-API-WEB-01: the same requests, by the agency's form and MoCert's page
    backchannel_logouts: BackchannelLogouts  # the logout tokens owed to the sites, posted by the courier


def built_from(setting: str, build: Callable[[], T]) -> T:
    """``build()``, or a refusal to start that names ``setting`` and says what is wrong with it."""
    try:
        return build()
    except Exception as exc:  # noqa: BLE001 - whatever the library raised, the operator reads the setting's name
        refuse_to_start(f"MOCERT_{setting}: {exc}")


def build(config: Mapping[str, Any]) -> Parts:
    national_id_hash = built_from("NATIONAL_ID_HMAC_KEY", lambda: NationalIdHash(config["NATIONAL_ID_HMAC_KEY"].encode()))
    login_marker = LoginMarker(config["SECRET_KEY"])
    invalidations = built_from("REDIS_URL", lambda: Invalidations(config["REDIS_URL"]))
    clients = ClientDirectory(invalidations, ttl=config["CLIENT_CACHE_SECONDS"])
    public_url = config["PUBLIC_URL"]
    login_sessions = LoginSessions(lifetime=config["SESSION_LIFETIME"], staff_idle_timeout=config["ADMIN_IDLE_TIMEOUT"])
    relying_party = RelyingParty.of(
        public_url=public_url,
        rp_id=config["WEBAUTHN_RP_ID"],
        name=config["WEBAUTHN_RP_NAME"],
        origins=config["WEBAUTHN_ORIGINS"],
        trust=built_from("WEBAUTHN_TRUST", lambda: trust_policy(
            config["WEBAUTHN_TRUST"],
            roots=config["WEBAUTHN_ATTESTATION_ROOTS"],
            mds_blob=config["WEBAUTHN_MDS_BLOB"],
            mds_root=config["WEBAUTHN_MDS_ROOT"],
        )),
    )
    certificates = MobileCertificates(
        ca=_mobile_ca(config), crl_validity=config["MOBILE_CRL_VALIDITY"], national_id_hash=national_id_hash
    )
    devices = Devices(
        relying_party=relying_party,
        certificates=certificates,
        public_url=public_url,
        binding_ttl=config["BINDING_TTL"],
        device_limit=config["DEVICE_LIMIT"],
    )
    agencies = built_from("AGENCY_KEY_ENCRYPTION_KEY", lambda: Agencies.of(config["AGENCY_KEY_ENCRYPTION_KEY"]))
    push_notices = PushNotices(
        vapid=_vapid_key(config),
        services=built_from("PUSH_SERVICES", lambda: webpush.PushServices.of(config["PUSH_SERVICES"])),
        inbox_url=f"{public_url}/m/inbox",
        timeout=config["PUSH_TIMEOUT"],
    )
    sp_requests = SpRequests(
        agencies=agencies,
        devices=devices,
        relying_party=relying_party,
        national_id_hash=national_id_hash,
        public_url=public_url,
        push_notices=push_notices,
    )
    return Parts(
        national_id_hash=national_id_hash,
        login_marker=login_marker,
        oidc_keys=built_from("OIDC_KEYS_DIR", lambda: CachedKeyRing.loaded(config["OIDC_KEYS_DIR"])),
        invalidations=invalidations,
        clients=clients,
        relying_party=relying_party,
        mobile_certificates=certificates,
        devices=devices,
        mobile_logins=MobileLogins(
            clients=clients,
            relying_party=relying_party,
            devices=devices,
            login_marker=login_marker,
            public_url=public_url,
            ttl=config["MOBILE_LOGIN_TTL"],
            session_lifetime=config["SESSION_LIFETIME"],
            code_issuer=direct_code.code_redirect,
        ),
        login_sessions=login_sessions,
        card_logins=CardLogins(
            verifier=card_verifier(config),
            public_url=public_url,
            challenge_ttl=config["CARD_LOGIN_CHALLENGE_TTL"],
            sessions=login_sessions,
        ),
        accounts=Accounts(
            national_id_hash=national_id_hash,
            identity_check=IdentityCheckClient(
                config["IDENTITY_CHECK_URL"], token=config["IDENTITY_CHECK_TOKEN"], timeout=config["IDENTITY_CHECK_TIMEOUT"]
            ),
            identity_check_attempts=config["IDENTITY_CHECK_MAX_ATTEMPTS"],
            registration_ttl=config["REGISTRATION_TTL"],
            sessions=login_sessions,
            letters=Letters(),
            code_key=config["SECRET_KEY"].encode(),
            email_code_ttl=config["EMAIL_CODE_TTL"],
            email_code_attempts=config["EMAIL_CODE_MAX_ATTEMPTS"],
            email_code_lockout=config["EMAIL_CODE_LOCKOUT"],
        ),
        support_contacts=built_from("SUPPORT_CONTACTS_FILE", lambda: _support_contacts(config["SUPPORT_CONTACTS"])),
        agencies=agencies,
        sp_requests=sp_requests,
        push_notices=push_notices,
        inbox=Inbox(
            relying_party=relying_party,
            devices=devices,
            sp_requests=sp_requests,
            push_notices=push_notices,
            ttl=config["INBOX_TTL"],
        ),
        sp_web=WebRedirects(sp_requests=sp_requests),
        backchannel_logouts=BackchannelLogouts(
            make_token=oauth2.logout_token,
            attempts=config["BACKCHANNEL_LOGOUT_ATTEMPTS"],
            retry_after=config["BACKCHANNEL_LOGOUT_RETRY_AFTER"],
            timeout=config["BACKCHANNEL_LOGOUT_TIMEOUT"],
        ),
    )


def _vapid_key(config: Mapping[str, Any]) -> webpush.VapidKey | None:
    """MoCert's VAPID key, or None: no key configured, no Web Push."""
    if not config["VAPID_PRIVATE_KEY"]:
        return None
    key = built_from("VAPID_PRIVATE_KEY", lambda: webpush.load_private_key(config["VAPID_PRIVATE_KEY"]))
    return built_from("VAPID_SUBJECT", lambda: webpush.VapidKey(key, config["VAPID_SUBJECT"]))


def _support_contacts(path: str | None) -> tuple[dict, ...]:
    if not path:
        return DEMO_SUPPORT_CONTACTS
    contacts = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(contacts, list) or not all(isinstance(c, dict) and c.get("name") for c in contacts):
        raise ValueError(f"{path} must hold a JSON list of contacts, each with a name")
    return tuple(contacts)


def _mobile_ca(config: Mapping[str, Any]) -> MobileCA | None:
    """The configured mobile CA; None only for the demo's own CA not made yet (``flask pki init-demo``
    makes it, and runs this factory first), which then refuses to issue until the next start."""
    certificate, key = config["MOBILE_CA_CERT"], config["MOBILE_CA_KEY"]
    if _demo_to_come(config, certificate, key):
        return None
    urls = StatusUrls.under(config["PUBLIC_URL"])
    built_from("MOBILE_CA_CERT", lambda: x509.load_pem_x509_certificate(Path(certificate).read_bytes()))
    return built_from("MOBILE_CA_KEY", lambda: MobileCA.load(certificate, key, urls))


# -- the card verifier ---------------------------------------------------------------------------------


def card_verifier(config: Mapping[str, Any]) -> CardVerifier:
    """The verifier of card logins, from the configured trust anchors, intermediates and revocation policy.

    Before ``flask pki init-demo`` has made the demo's root (development's default anchor), no card is
    trusted yet: every card login is refused until the server restarts with it.
    """
    settings = trust_settings(config)
    if not settings.anchors:
        log.warning("no card trust anchor exists yet: card logins are refused until the demo PKI is made")
        return NoTrustedIssuer()
    return CardLoginVerifier(built_from("CARD_TRUST_ANCHORS", lambda: CardCertificateValidator(settings)))


def trust_settings(config: Mapping[str, Any]) -> TrustSettings:
    origins = list(config["CARD_REVOCATION_HOSTS"])
    # The demo cards name the address their PKI was made with; while this server serves it, that is allowed.
    if config["SERVE_DEMO_PKI"] and DemoPKI.exists(config["DEMO_PKI_DIR"]):
        demo = origin_of(DemoPKI(config["DEMO_PKI_DIR"]).manifest["base_url"])
        if demo is not None and demo not in origins:
            origins.append(demo)
    return TrustSettings(
        anchors=_certificates(config, "CARD_TRUST_ANCHORS"),
        intermediates=_certificates(config, "CARD_INTERMEDIATES"),
        policy_oids=tuple(config["CARD_POLICY_OIDS"]),
        revocation_mode=config["CARD_REVOCATION_MODE"],
        fetch_timeout=config["CARD_REVOCATION_TIMEOUT"],
        revocation_origins=tuple(origins),
    )


def _certificates(config: Mapping[str, Any], setting: str) -> tuple[bytes, ...]:
    """The DER of each certificate file a setting lists (PEM or DER); a file that is missing or no certificate
    stops the start, except the files of a demo PKI not made yet."""
    loaded = []
    for path in map(Path, config[setting]):
        if _demo_to_come(config, path):
            continue
        loaded.append(built_from(setting, lambda path=path: _certificate(path)))
    return tuple(loaded)


def _demo_to_come(config: Mapping[str, Any], *paths: str | Path) -> bool:
    """Whether ``paths`` are files of the demo PKI that ``flask pki init-demo`` has not made yet: a fresh
    checkout's ``make run`` migrates the database (so builds these parts) before it makes the demo PKI.
    Never in production, which refuses the demo PKI anyway."""
    demo = Path(config["DEMO_PKI_DIR"])
    return (
        config.get("ENV_NAME") != "production"
        and not DemoPKI.exists(demo)
        and all(Path(path).parent == demo and not Path(path).exists() for path in paths)
    )


def _certificate(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path} cannot be read ({exc.strerror})") from None
    try:
        cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except ValueError:
        raise ValueError(f"{path} is not a certificate (PEM or DER)") from None
    return cert.public_bytes(Encoding.DER)


def install(app: Flask) -> None:
    app.extensions["mocert"] = build(app.config)


def parts() -> Parts:
    return current_app.extensions["mocert"]


# Whatever changes a client, through any code path (the console, the CLI, the API, a test), is seen at its
# flush and forgotten by every process's ClientDirectory once committed, never before.
_CHANGED_CLIENTS = "mocert.changed_clients"


@event.listens_for(Session, "after_flush")
def _note_changed_clients(session: Session, flush_context: Any) -> None:
    changed = {obj.client_id for obj in (*session.new, *session.dirty, *session.deleted) if isinstance(obj, OidcClient)}
    if changed:
        session.info.setdefault(_CHANGED_CLIENTS, set()).update(changed)


@event.listens_for(Session, "after_commit")
def _forget_changed_clients(session: Session) -> None:
    changed = session.info.pop(_CHANGED_CLIENTS, None)
    if changed and has_app_context() and "mocert" in current_app.extensions:
        for client_id in changed:
            parts().clients.changed(client_id)


@event.listens_for(Session, "after_rollback")
def _keep_clients(session: Session) -> None:
    session.info.pop(_CHANGED_CLIENTS, None)
