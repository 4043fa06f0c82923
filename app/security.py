"""Every environment refuses settings that cannot work; production also refuses development secrets, the
demo PKI or identity check, the debugger, per-worker limits and anything else that weakens a check."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit
from typing import NoReturn

import click
from cryptography import x509
from cryptography.x509.oid import NameOID

from limits import parse_many

from config import RefusedConfiguration, refuse_to_start
from iccard import moica
from iccard.demo_pki import ISSUER_NAME, MOBILE_CA_NAME, ROOT_NAME
from iccard.validation import REVOCATION_MODES

from . import timezones
from .webpush import is_demo_key

SECRETS = ("SECRET_KEY", "NATIONAL_ID_HMAC_KEY", "OIDC_PAIRWISE_KEY")


# Settings whose variable is not MOCERT_<key>: the unit is in the variable's name.
VARIABLES = {
    "SQLALCHEMY_DATABASE_URI": "DATABASE_URL",
    "REGISTRATION_TTL": "REGISTRATION_TTL_MINUTES",
    "EMAIL_CODE_TTL": "EMAIL_CODE_TTL_MINUTES",
    "EMAIL_CODE_LOCKOUT": "EMAIL_CODE_LOCKOUT_MINUTES",
    "SESSION_LIFETIME": "SESSION_HOURS",
    "ADMIN_IDLE_TIMEOUT": "ADMIN_IDLE_MINUTES",
    "OIDC_REFRESH_TOKEN_TTL": "OIDC_REFRESH_TOKEN_DAYS",
}
# At least this much of each, or the feature cannot work at all (a code that expires as it is sent).
DURATIONS = (
    "CARD_LOGIN_CHALLENGE_TTL", "REGISTRATION_TTL", "BINDING_TTL", "MOBILE_LOGIN_TTL", "MOBILE_CRL_VALIDITY",
    "EMAIL_CODE_TTL", "EMAIL_CODE_LOCKOUT", "SESSION_LIFETIME", "ADMIN_IDLE_TIMEOUT", "OIDC_TOKEN_TTL",
    "OIDC_REFRESH_TOKEN_TTL", "OIDC_CODE_TTL", "OIDC_KEY_RETIRE_AFTER", "INBOX_TTL",
    "BACKCHANNEL_LOGOUT_RETRY_AFTER", "BACKCHANNEL_LOGOUT_TOKEN_TTL",
)
COUNTS = ("DEVICE_LIMIT", "EMAIL_CODE_MAX_ATTEMPTS", "IDENTITY_CHECK_MAX_ATTEMPTS", "BACKCHANNEL_LOGOUT_ATTEMPTS")
TIMEOUTS = ("CARD_REVOCATION_TIMEOUT", "IDENTITY_CHECK_TIMEOUT", "SMTP_TIMEOUT", "PUSH_TIMEOUT", "SQLITE_BUSY_TIMEOUT",
            "BACKCHANNEL_LOGOUT_TIMEOUT")
RATE_LIMITS = ("CARD_LOGIN_RATE_LIMIT", "REGISTRATION_RATE_LIMIT", "PHONE_RATE_LIMIT", "SP_API_REFUSAL_RATE_LIMIT")
LOOPBACK = ("localhost", "127.0.0.1", "::1")


def variable(key: str) -> str:
    """The environment variable that sets ``key``."""
    return f"MOCERT_{VARIABLES.get(key, key)}"


class UnsafeConfiguration(RefusedConfiguration):
    """A refusal listing every problem found (production's, or any environment's unusable settings)."""

    def __init__(self, problems: list[str], *, where: str = "in production") -> None:
        super().__init__(f"refusing to start {where}:\n  - " + "\n  - ".join(problems))
        self.problems = problems


def refuse(problems: list[str]) -> NoReturn:
    refuse_to_start(UnsafeConfiguration(problems))


def check_settings(config) -> None:
    """Settings no environment can run with, all named at once: each would otherwise fail later, on the
    request that first needs it (a rate limit Flask-Limiter cannot parse, a code that expires at once)."""
    problems = []
    for key in DURATIONS:
        if not isinstance(config.get(key), timedelta) or config[key] <= timedelta(0):
            problems.append(f"{variable(key)} must be a positive duration")
    for key in COUNTS:
        if config.get(key, 0) < 1:
            problems.append(f"{variable(key)} must be at least 1")
    for key in TIMEOUTS:
        if not config.get(key, 0) > 0:
            problems.append(f"{variable(key)} must be a positive number of seconds")
    for key in RATE_LIMITS:
        try:
            parse_many(config.get(key) or "")
        except ValueError:
            problems.append(f"{variable(key)} must be a rate limit such as 30/minute, not {config.get(key)!r}")
    if config.get("CARD_REVOCATION_MODE") not in REVOCATION_MODES:
        problems.append(f"MOCERT_CARD_REVOCATION_MODE must be one of {', '.join(REVOCATION_MODES)}, "
                        f"not {config.get('CARD_REVOCATION_MODE')!r}")
    public = urlsplit(config.get("PUBLIC_URL") or "")
    if public.scheme not in ("http", "https") or not public.hostname or public.path or public.query:
        problems.append(f"MOCERT_PUBLIC_URL must be an origin such as https://login.example.tw, "
                        f"not {config.get('PUBLIC_URL')!r}")
    if not 0 < config.get("SMTP_PORT", 0) < 65536:
        problems.append("MOCERT_SMTP_PORT must be a port number")
    if config.get("TRUSTED_PROXIES", 0) < 0:
        problems.append("MOCERT_TRUSTED_PROXIES must be 0 or more")
    try:
        timezones.load(config.get("DISPLAY_TIMEZONE"))
    except ValueError as exc:
        problems.append(f"MOCERT_DISPLAY_TIMEZONE: {exc}")
    if not config.get("AUDIT_SEAL_INTERVAL", 0) >= 0:
        problems.append("MOCERT_AUDIT_SEAL_INTERVAL must be 0 (no sealer thread) or a positive number of seconds")
    if not config.get("BACKCHANNEL_LOGOUT_INTERVAL", 0) >= 0:
        problems.append("MOCERT_BACKCHANNEL_LOGOUT_INTERVAL must be 0 (no courier thread) or a positive number of "
                        "seconds")
    if problems:
        refuse_to_start(UnsafeConfiguration(problems, where="with these settings"))


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
    for name in SECRETS:
        value = config.get(name)
        if not value or len(value) < 32:
            problems.append(f"MOCERT_{name} must be set to a random value of at least 32 characters")
        elif weakness := secret_weakness(value):
            problems.append(f"MOCERT_{name} must be set to a random value, not one that {weakness}")
    for index, first in enumerate(SECRETS):
        for second in SECRETS[index + 1:]:
            if config.get(first) and config.get(first) == config.get(second):
                # One key for two purposes: whoever learns it for one (sessions) can compute the other
                # (national-ID hashes, pairwise subjects).
                problems.append(f"MOCERT_{first} and MOCERT_{second} must differ")
    problems.extend(agency_key_problems(config.get("AGENCY_KEY_ENCRYPTION_KEY")))
    if is_demo_key(config.get("VAPID_PRIVATE_KEY")):
        # Its private half is in every development's instance/ it was copied from: anyone could push as MoCert.
        problems.append("MOCERT_VAPID_PRIVATE_KEY is a development key; make one of your own (README: Web Push)")
    problems.extend(debugging_problems(config.get("DEBUG")))
    storage = (config.get("RATELIMIT_STORAGE_URI") or "memory://").lower()
    if storage.startswith("memory:"):
        # Each worker would count alone: with 4 workers a 30/minute limit lets about 120 through.
        problems.append(
            "MOCERT_RATELIMIT_STORAGE_URI must be shared storage, not memory:// (each worker would count "
            "alone); e.g. redis://127.0.0.1:6379"
        )
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
    if config.get("CARD_REVOCATION_MODE") != "hard-fail":
        # soft-fail logs a card in when its CA cannot say whether it was revoked: a stolen card that way too.
        problems.append("MOCERT_CARD_REVOCATION_MODE must be hard-fail in production")
    if config.get("MAIL_TO_CONSOLE"):
        problems.append("MOCERT_MAIL_TO_CONSOLE must be off in production (it writes confirmation codes to the log)")
    if config.get("SMTP_USERNAME") and not config.get("SMTP_STARTTLS") and config.get("SMTP_HOST") not in LOOPBACK:
        problems.append("MOCERT_SMTP_STARTTLS must be on when MOCERT_SMTP_USERNAME logs in to a mail server "
                        "on another machine (the password would cross the network in the clear)")
    for origin in config.get("WEBAUTHN_ORIGINS") or ():
        if not origin.startswith("https://"):
            problems.append(f"MOCERT_WEBAUTHN_ORIGINS must hold https:// origins in production, not {origin}")
    if not config.get("RATELIMIT_ENABLED"):
        # The limits are what stop guessing: login challenges, phone codes, typed national IDs.
        problems.append("MOCERT_RATELIMIT_ENABLED must stay on in production")
    if problems:
        refuse(problems)


def agency_key_problems(value: str | None) -> list[str]:
    """Production's key that seals the agencies' API keys: set, base64 of 32 bytes, and random-looking (a
    key of one repeated byte, or a count, would seal nothing)."""
    from .services.agencies import key_encryption_key

    try:
        key = key_encryption_key(value)
    except ValueError as exc:
        return [f"MOCERT_AGENCY_KEY_ENCRYPTION_KEY {exc}"]
    # Random bytes show neither by chance: 32 draws from 256 give about 30 distinct values, and one step
    # between neighbours (mod 256) for more than half of the 31 pairs has odds far below 2**-100.
    if len(set(key)) < len(key) // 2:
        return ["MOCERT_AGENCY_KEY_ENCRYPTION_KEY must be 32 random bytes, not ones that repeat themselves"]
    [(_, count)] = Counter((b - a) % 256 for a, b in zip(key, key[1:])).most_common(1)
    if 2 * count > len(key) - 1:
        return ["MOCERT_AGENCY_KEY_ENCRYPTION_KEY must be 32 random bytes, not a count"]
    return []


def debugging_problems(debug: bool | None, *, use_debugger: bool = False, use_reloader: bool = False) -> list[str]:
    """What of Werkzeug's debugger or reloader is switched on: the debug flag (FLASK_DEBUG, which
    ``flask --debug`` and ``flask run --debug`` also set), and ``flask run --debugger`` / ``--reload``, which
    wrap the app without touching the flag and are visible here only through the click context of the
    running command (the factory runs inside it)."""
    problems = []
    if debug:
        problems.append(
            "debug mode must be off in production (FLASK_DEBUG, --debug, app.debug): its debugger runs code"
        )
    run = _running_command_parameters()
    if use_debugger or run.get("debugger"):
        problems.append("the debugger must be off in production (--debugger, use_debugger)")
    if use_reloader or run.get("reload"):
        problems.append("the reloader must be off in production (--reload, use_reloader)")
    return problems


def _running_command_parameters() -> dict:
    context = click.get_current_context(silent=True)
    return dict(context.params) if context is not None and context.command.name == "run" else {}


def secret_weakness(value: str) -> str | None:
    """Why a value of 32+ characters is no random secret, or None. Only patterns a random value cannot show
    by chance: fewer distinct neighbouring pairs than half the pairs (`ssss…`, `changemechangeme…`,
    `1234567890…`), a repetition of its own first half or less (`0123456789abcdef` twice), or one step
    between neighbours for more than half of them (`abcdef…`, `zyxw…`, `acegi…`). 300,000 draws each of
    `openssl rand -hex 16` and of 32 random digits met none of them."""
    pairs = len(value) - 1
    if 2 * len({value[i:i + 2] for i in range(pairs)}) < pairs:
        return "repeats itself"
    if any(value[period:] == value[:-period] for period in range(1, len(value) // 2 + 1)):
        return "repeats itself"
    [(_, count)] = Counter(ord(b) - ord(a) for a, b in zip(value, value[1:])).most_common(1)
    if 2 * count > pairs:
        return "runs through the alphabet or the digits"
    return None


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
    # The MOICA-profile demo PKI wears the real CAs' names on its own keys: only the key tells it from them.
    return bool(names & {ROOT_NAME, ISSUER_NAME, MOBILE_CA_NAME}) or moica.wears_a_real_name(cert)
