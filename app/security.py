"""Production refuses to start with development secrets, the demo PKI or the demo identity check."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from iccard.demo_pki import ISSUER_NAME, MOBILE_CA_NAME, ROOT_NAME


class UnsafeConfiguration(SystemExit):
    pass


# Every page: scripts and styles from this server only (translations travel as JSON data blocks, not
# inline code), QR codes as data: images, no framing (the login and binding pages must not be overlaid),
# and no token-bearing URL (/m/bind/<token>) leaked to other sites as a referrer.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def add_security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def check_production(config) -> None:
    problems = []
    for name in ("SECRET_KEY", "NATIONAL_ID_HMAC_KEY", "OIDC_PAIRWISE_KEY"):
        value = config.get(name)
        if not value or len(value) < 32:
            problems.append(f"MOCERT_{name} must be set to a random value of at least 32 characters")
    if config.get("SERVE_DEMO_PKI"):
        problems.append("MOCERT_SERVE_DEMO_PKI must be off in production")
    demo_dir = Path(config["DEMO_PKI_DIR"]).resolve()
    for path in (*config["CARD_TRUST_ANCHORS"], *config["CARD_INTERMEDIATES"]):
        resolved = Path(path).resolve()
        if not resolved.is_file():
            problems.append(f"{path} (a card trust anchor or intermediate) does not exist")
        elif demo_dir in resolved.parents or _is_demo_certificate(resolved):
            problems.append(f"{path} is the demo PKI; set MOCERT_CARD_TRUST_ANCHORS to the real GRCA root")
    mobile_ca = Path(config["MOBILE_CA_CERT"]).resolve()
    for name in ("MOBILE_CA_CERT", "MOBILE_CA_KEY"):
        if not Path(config[name]).is_file():
            problems.append(f"MOCERT_{name} ({config[name]}) does not exist")
    if demo_dir in mobile_ca.parents or _is_demo_certificate(mobile_ca):
        problems.append("MOCERT_MOBILE_CA_CERT is the demo mobile-certificate CA; configure your own CA and key")
    if not any(Path(config["OIDC_KEYS_DIR"]).glob("*.pem")):
        problems.append(f"no OIDC signing key in {config['OIDC_KEYS_DIR']} (flask --app wsgi oidc rotate-key)")
    identity_check = config.get("IDENTITY_CHECK_URL") or ""
    if not identity_check:
        problems.append("MOCERT_IDENTITY_CHECK_URL must name the identity-check service (no ID is claimed without it)")
    elif "/pki/demo/" in identity_check:
        problems.append("MOCERT_IDENTITY_CHECK_URL is the demo identity check; name the real service")
    elif not identity_check.startswith("https://"):
        problems.append("MOCERT_IDENTITY_CHECK_URL must be https:// in production")
    if identity_check and not config.get("IDENTITY_CHECK_TOKEN"):
        problems.append("MOCERT_IDENTITY_CHECK_TOKEN must be set (the identity-check service's credential)")
    if not config["PUBLIC_URL"].startswith("https://"):
        problems.append("MOCERT_PUBLIC_URL must be https:// in production")
    if not config.get("RATELIMIT_ENABLED"):
        # The limits are what stop guessing: login challenges, phone codes, typed national IDs.
        problems.append("MOCERT_RATELIMIT_ENABLED must stay on in production")
    if problems:
        raise UnsafeConfiguration("refusing to start in production:\n  - " + "\n  - ".join(problems))


def _is_demo_certificate(path: Path) -> bool:
    try:
        data = path.read_bytes()
    except OSError:
        return False
    try:
        cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except ValueError:
        return False
    names = {attr.value for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)}
    return bool(names & {ROOT_NAME, ISSUER_NAME, MOBILE_CA_NAME})
