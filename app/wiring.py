"""The application's parts, built once in ``create_app`` from its configuration and handed to the services.

Whatever a setting can be wrong about (a key that does not load, a trust root that does not parse, an
origin that is not one) fails here, at startup, with a message that names the setting; nothing is built
lazily on a first request. Views reach the parts through :func:`parts`; services get them passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from flask import Flask, current_app

from config import refuse_to_start

from .oidc.keys import CachedKeyRing
from .services.devices import Devices, RelyingParty, trust_policy
from .services.mobile_certificates import MobileCA, MobileCertificates, StatusUrls
from .services.mobile_login import MobileLogins
from .services.sessions import LoginMarker
from .services.tokens import NationalIdHash

T = TypeVar("T")


@dataclass(frozen=True)
class Parts:
    national_id_hash: NationalIdHash
    login_marker: LoginMarker
    oidc_keys: CachedKeyRing  # the provider's signing keys, read now and again when a key is added
    # -- phones: the relying party, the mobile CA, binding and phone login
    relying_party: RelyingParty
    mobile_certificates: MobileCertificates
    devices: Devices
    mobile_logins: MobileLogins


def built_from(setting: str, build: Callable[[], T]) -> T:
    """``build()``, or a refusal to start that names ``setting`` and says what is wrong with it."""
    try:
        return build()
    except Exception as exc:  # noqa: BLE001 - whatever the library raised, the operator reads the setting's name
        refuse_to_start(f"MOCERT_{setting}: {exc}")


def build(config: Mapping[str, Any]) -> Parts:
    national_id_hash = built_from("NATIONAL_ID_HMAC_KEY", lambda: NationalIdHash(config["NATIONAL_ID_HMAC_KEY"].encode()))
    login_marker = LoginMarker(config["SECRET_KEY"])
    public_url = config["PUBLIC_URL"]
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
    return Parts(
        national_id_hash=national_id_hash,
        login_marker=login_marker,
        oidc_keys=built_from("OIDC_KEYS_DIR", lambda: CachedKeyRing.loaded(config["OIDC_KEYS_DIR"])),
        relying_party=relying_party,
        mobile_certificates=certificates,
        devices=devices,
        mobile_logins=MobileLogins(
            relying_party=relying_party,
            devices=devices,
            login_marker=login_marker,
            public_url=public_url,
            ttl=config["MOBILE_LOGIN_TTL"],
            session_lifetime=config["SESSION_LIFETIME"],
        ),
    )


def _mobile_ca(config: Mapping[str, Any]) -> MobileCA | None:
    """The configured mobile CA; None only for the demo's own CA not made yet (``flask pki init-demo``
    makes it, and runs this factory first), which then refuses to issue until the next start."""
    certificate, key = config["MOBILE_CA_CERT"], config["MOBILE_CA_KEY"]
    demo = Path(config["DEMO_PKI_DIR"])
    if (
        config.get("ENV_NAME") != "production"
        and (Path(certificate), Path(key)) == (demo / "mobile-ca.pem", demo / "mobile-ca.key.pem")
        and not Path(certificate).exists()
        and not Path(key).exists()
    ):
        return None
    urls = StatusUrls.under(config["PUBLIC_URL"])
    built_from("MOBILE_CA_CERT", lambda: x509.load_pem_x509_certificate(Path(certificate).read_bytes()))
    return built_from("MOBILE_CA_KEY", lambda: MobileCA.load(certificate, key, urls))


def install(app: Flask) -> None:
    app.extensions["mocert"] = build(app.config)


def parts() -> Parts:
    return current_app.extensions["mocert"]
