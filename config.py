"""Settings: defaults here, overridden by ``MOCERT_*`` environment variables, read only in the factory.

``MOCERT_ENV`` picks the class (``development`` by default, ``production``, ``testing``). Nothing here
holds a secret: development creates its own random ones under ``instance/``; production must be given
them and refuses the demo PKI (see :func:`check_production`).
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
from datetime import timedelta
from pathlib import Path
from typing import NoReturn

from iccard.origins import parse_origin

BASE_DIR = Path(__file__).resolve().parent  # beside config.py: app/, migrations/ (source tree or site-packages)

# The browsers' push services: Chrome's (and other Chromium browsers'), Firefox's, Safari's, Edge's.
DEFAULT_PUSH_SERVICES = (
    "https://fcm.googleapis.com https://updates.push.services.mozilla.com https://web.push.apple.com "
    "https://*.notify.windows.com"
)

# gunicorn's master halts ("App failed to load.") when a worker exits with this status; any other status
# and it boots a new worker, which is refused again, forever.
APP_LOAD_ERROR = 4


class RefusedConfiguration(SystemExit):
    """A setting the server will not start with: the process exits with status 4 (APP_LOAD_ERROR), the
    reason being its text. Raise it with :func:`refuse_to_start`."""

    def __init__(self, reason: str) -> None:
        super().__init__(APP_LOAD_ERROR)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def refuse_to_start(refusal: RefusedConfiguration | str) -> NoReturn:
    """End the process with the reason on stderr: an integer exit status is printed by nobody (not Python,
    not gunicorn, not flask run), so the reason is written here, where every one of them shows it."""
    if isinstance(refusal, str):
        refusal = RefusedConfiguration(refusal)
    print(refusal.reason, file=sys.stderr, flush=True)
    raise refusal


def default_instance_dir() -> Path:
    """Where secrets, the SQLite database and the demo PKI go without MOCERT_INSTANCE_DIR: a source tree's
    own ``instance/``; for an installed package (no pyproject.toml beside config.py) ``instance/`` in the
    directory the server starts in, since an installation must not write into site-packages."""
    if (BASE_DIR / "pyproject.toml").is_file():
        return BASE_DIR / "instance"
    return Path.cwd() / "instance"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"MOCERT_{name}", default)


def _env_list(name: str, default: str = "") -> tuple[str, ...]:
    raw = _env(name, default) or ""
    return tuple(part.strip() for part in raw.replace(",", os.pathsep).split(os.pathsep) if part.strip())


def _env_origins(name: str) -> tuple[str, ...]:
    # Comma- or space-separated: URLs hold colons, so the path separator will not do.
    try:
        return tuple(parse_origin(value) for value in (_env(name) or "").replace(",", " ").split())
    except ValueError as exc:
        refuse_to_start(f"MOCERT_{name}: {exc}")


def _env_int(name: str, default: int) -> int:
    value = _env(name, str(default))
    try:
        return int(value)
    except ValueError:
        refuse_to_start(f"MOCERT_{name} must be a whole number, not {value!r}")


def _env_float(name: str, default: float) -> float:
    value = _env(name, str(default))
    try:
        return float(value)
    except ValueError:
        refuse_to_start(f"MOCERT_{name} must be a number, not {value!r}")


def _env_bool(name: str, default: bool) -> bool:
    return (_env(name, "1" if default else "0") or "").lower() in {"1", "true", "yes", "on"}


class Config:
    ENV_NAME = "base"

    def __init__(self) -> None:
        self.INSTANCE_DIR = instance = Path(_env("INSTANCE_DIR") or default_instance_dir())
        self.SQLALCHEMY_DATABASE_URI = _env("DATABASE_URL", f"sqlite:///{instance / 'mocert.db'}")
        self.SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
        # On SQLite, how long a write waits for another to end before "database is locked" (see app/sqlite.py).
        self.SQLITE_BUSY_TIMEOUT = _env_float("SQLITE_BUSY_TIMEOUT", 10)
        # Seconds between two rounds of each process's audit sealer (app/audit_chain.py): an event is sealed
        # into the hash chain within about twice this of its commit. 0: no sealer thread (flask audit seal).
        self.AUDIT_SEAL_INTERVAL = _env_float("AUDIT_SEAL_INTERVAL", 0.5)
        self.PUBLIC_URL = (_env("PUBLIC_URL", f"http://localhost:{os.environ.get('PORT', '5000')}")).rstrip("/")
        self.SECRET_KEY = _env("SECRET_KEY")
        self.NATIONAL_ID_HMAC_KEY = _env("NATIONAL_ID_HMAC_KEY")

        # Card trust: the demo PKI by default; the real chain is GRCA G3 → MOICA G3 (see README).
        self.DEMO_PKI_DIR = Path(_env("DEMO_PKI_DIR", str(instance / "demo-pki")))
        self.CARD_TRUST_ANCHORS = _env_list("CARD_TRUST_ANCHORS") or (str(self.DEMO_PKI_DIR / "root.pem"),)
        self.CARD_INTERMEDIATES = _env_list("CARD_INTERMEDIATES") or (str(self.DEMO_PKI_DIR / "issuer.pem"),)
        self.CARD_POLICY_OIDS = _env_list("CARD_POLICY_OIDS", "2.16.886.101.0.3.3")
        self.CARD_REVOCATION_MODE = _env("CARD_REVOCATION_MODE", "hard-fail")
        self.CARD_REVOCATION_TIMEOUT = _env_float("CARD_REVOCATION_TIMEOUT", 5)
        # OCSP/CRL origins (scheme://host[:port]) allowed besides those the configured CA certificates name.
        self.CARD_REVOCATION_HOSTS = _env_origins("CARD_REVOCATION_HOSTS")
        self.CARD_LOGIN_CHALLENGE_TTL = timedelta(seconds=_env_int("CARD_LOGIN_CHALLENGE_TTL", 120))
        self.REGISTRATION_TTL = timedelta(minutes=_env_int("REGISTRATION_TTL_MINUTES", 15))
        # Serve the demo PKI's CRL, OCSP and identity-check answers from this server (development only).
        self.SERVE_DEMO_PKI = _env_bool("SERVE_DEMO_PKI", self.ENV_NAME != "production")
        self.COMPONENT_URL = _env("COMPONENT_URL", "http://localhost:61161")
        # Who holds which card: no national ID is claimed without this service's yes (see README).
        self.IDENTITY_CHECK_URL = _env("IDENTITY_CHECK_URL")
        self.IDENTITY_CHECK_TOKEN = _env("IDENTITY_CHECK_TOKEN")
        self.IDENTITY_CHECK_TIMEOUT = _env_float("IDENTITY_CHECK_TIMEOUT", 5)
        self.IDENTITY_CHECK_MAX_ATTEMPTS = _env_int("IDENTITY_CHECK_MAX_ATTEMPTS", 5)

        # Phones: WebAuthn relying party (by default PUBLIC_URL's host and origin), binding, certificates.
        self.WEBAUTHN_RP_ID = _env("WEBAUTHN_RP_ID")
        self.WEBAUTHN_RP_NAME = _env("WEBAUTHN_RP_NAME", "MoCert")
        self.WEBAUTHN_ORIGINS = _env_origins("WEBAUTHN_ORIGINS")  # URLs hold colons: not split on os.pathsep
        # Attestation trust: "any" (statements verified, no root required), "roots", or "mds3".
        self.WEBAUTHN_TRUST = _env("WEBAUTHN_TRUST", "any")
        self.WEBAUTHN_ATTESTATION_ROOTS = _env_list("WEBAUTHN_ATTESTATION_ROOTS")
        self.WEBAUTHN_MDS_BLOB = _env("WEBAUTHN_MDS_BLOB")
        self.WEBAUTHN_MDS_ROOT = _env("WEBAUTHN_MDS_ROOT")
        self.BINDING_TTL = timedelta(seconds=_env_int("BINDING_TTL", 300))
        self.MOBILE_LOGIN_TTL = timedelta(seconds=_env_int("MOBILE_LOGIN_TTL", 120))
        self.DEVICE_LIMIT = _env_int("DEVICE_LIMIT", 5)
        self.MOBILE_CA_CERT = _env("MOBILE_CA_CERT", str(self.DEMO_PKI_DIR / "mobile-ca.pem"))
        self.MOBILE_CA_KEY = _env("MOBILE_CA_KEY", str(self.DEMO_PKI_DIR / "mobile-ca.key.pem"))
        # How long each published CRL of the mobile CA is valid (its nextUpdate); it is republished on every change.
        self.MOBILE_CRL_VALIDITY = timedelta(seconds=_env_int("MOBILE_CRL_VALIDITY", 86400))

        self.SMTP_HOST = _env("SMTP_HOST", "localhost")
        self.SMTP_PORT = _env_int("SMTP_PORT", 25)
        self.SMTP_USERNAME = _env("SMTP_USERNAME")
        self.SMTP_PASSWORD = _env("SMTP_PASSWORD")
        self.SMTP_STARTTLS = _env_bool("SMTP_STARTTLS", False)
        self.SMTP_TIMEOUT = _env_float("SMTP_TIMEOUT", 10)
        self.MAIL_FROM = _env("MAIL_FROM", "MoCert <no-reply@localhost>")
        # In development mail also goes to the console, so a newcomer needs no mail server.
        self.MAIL_TO_CONSOLE = _env_bool("MAIL_TO_CONSOLE", self.ENV_NAME == "development")
        self.EMAIL_CODE_TTL = timedelta(minutes=_env_int("EMAIL_CODE_TTL_MINUTES", 15))
        self.EMAIL_CODE_MAX_ATTEMPTS = _env_int("EMAIL_CODE_MAX_ATTEMPTS", 5)
        self.EMAIL_CODE_LOCKOUT = timedelta(minutes=_env_int("EMAIL_CODE_LOCKOUT_MINUTES", 15))

        self.SESSION_LIFETIME = timedelta(hours=_env_int("SESSION_HOURS", 8))
        self.PERMANENT_SESSION_LIFETIME = self.SESSION_LIFETIME
        # Sessions of admins and auditors end after this long without a request.
        self.ADMIN_IDLE_TIMEOUT = timedelta(minutes=_env_int("ADMIN_IDLE_MINUTES", 15))
        self.SESSION_COOKIE_NAME = "mocert_session"
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = self.ENV_NAME == "production"
        self.REMEMBER_COOKIE_HTTPONLY = True
        # How many reverse proxies stand in front (their X-Forwarded-For is trusted for audit IPs).
        self.TRUSTED_PROXIES = _env_int("TRUSTED_PROXIES", 0)
        self.MAX_CONTENT_LENGTH = _env_int("MAX_CONTENT_LENGTH", 64 * 1024)
        self.WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session it belongs to
        self.WTF_CSRF_HEADERS = ["X-CSRF-Token"]
        self.WTF_CSRF_SSL_STRICT = self.ENV_NAME == "production"

        self.RATELIMIT_STORAGE_URI = _env("RATELIMIT_STORAGE_URI", "memory://")
        # Where the processes tell each other what changed (app/invalidation.py): Redis, the rate limiter's
        # by default; none on one machine, where a cached client is at most CLIENT_CACHE_SECONDS old elsewhere.
        # (redis:// and rediss:// only: the rate limiter's redis+sentinel:// and redis+cluster:// are not redis-py's.)
        storage = self.RATELIMIT_STORAGE_URI
        default_redis = storage if storage.startswith(("redis://", "rediss://")) else None
        self.REDIS_URL = _env("REDIS_URL", default_redis)
        self.CLIENT_CACHE_SECONDS = _env_float("CLIENT_CACHE_SECONDS", 10.0)
        # Before every counter's key: deployments (or test runs) sharing one Redis count apart.
        self.RATELIMIT_KEY_PREFIX = _env("RATELIMIT_KEY_PREFIX", "")
        self.RATELIMIT_ENABLED = _env_bool("RATELIMIT_ENABLED", True)
        self.RATELIMIT_HEADERS_ENABLED = True
        self.CARD_LOGIN_RATE_LIMIT = _env("CARD_LOGIN_RATE_LIMIT", "30/minute")
        self.REGISTRATION_RATE_LIMIT = _env("REGISTRATION_RATE_LIMIT", "10/minute")
        self.PHONE_RATE_LIMIT = _env("PHONE_RATE_LIMIT", "30/minute")
        # Refused calls of the agencies' API per address (a poll or a ticket that passes is not counted):
        # each refusal is an audit event, so a caller without the key cannot fill the trail.
        self.SP_API_REFUSAL_RATE_LIMIT = _env("SP_API_REFUSAL_RATE_LIMIT", "60/minute")

        self.BABEL_DEFAULT_LOCALE = "zh_Hant_TW"
        # Pages show times in this zone (app/timezones.py); storage and exports stay UTC.
        self.DISPLAY_TIMEZONE = _env("DISPLAY_TIMEZONE", "Asia/Taipei")
        self.BABEL_DEFAULT_TIMEZONE = self.DISPLAY_TIMEZONE
        self.BABEL_TRANSLATION_DIRECTORIES = str(BASE_DIR / "app" / "translations")
        self.LANGUAGES = ("zh_Hant_TW", "en")

        self.SUPPORT_CONTACTS = _env("SUPPORT_CONTACTS_FILE")  # JSON file; the demo shows MOICA's hotline

        # OpenID Connect provider: signing keys are PEM files in a directory (never in the repository).
        self.OIDC_KEYS_DIR = Path(_env("OIDC_KEYS_DIR", str(instance / "oidc-keys")))
        self.OIDC_TOKEN_TTL = timedelta(seconds=_env_int("OIDC_TOKEN_TTL", 3600))  # access and ID tokens
        self.OIDC_REFRESH_TOKEN_TTL = timedelta(days=_env_int("OIDC_REFRESH_TOKEN_DAYS", 30))
        self.OIDC_CODE_TTL = timedelta(seconds=_env_int("OIDC_CODE_TTL", 60))
        # An older key stays published this long after its successor took over (token lifetime + margin).
        self.OIDC_KEY_RETIRE_AFTER = timedelta(
            seconds=_env_int("OIDC_KEY_RETIRE_AFTER", int(self.OIDC_TOKEN_TTL.total_seconds()) + 3600)
        )
        self.OIDC_PAIRWISE_KEY = _env("OIDC_PAIRWISE_KEY")
        # Seals the agencies' API keys (AES-256-GCM): base64 of 32 random bytes, `openssl rand -base64 32`.
        self.AGENCY_KEY_ENCRYPTION_KEY = _env("AGENCY_KEY_ENCRYPTION_KEY")
        # A phone's inbox (/m/inbox) of the requests agencies push to it: open this long after its passkey.
        self.INBOX_TTL = timedelta(seconds=_env_int("INBOX_TTL", 600))
        # Web Push (VAPID) notices to the phones' inboxes: MoCert's P-256 key (the PEM, or a PEM file's path)
        # and a contact for the push services (mailto: or https:). No key: no notices (an open inbox still
        # lists what waits). The push services it posts to are origins, *. for all hosts of a domain.
        self.VAPID_PRIVATE_KEY = _env("VAPID_PRIVATE_KEY")
        self.VAPID_SUBJECT = _env("VAPID_SUBJECT")
        self.PUSH_SERVICES = tuple((_env("PUSH_SERVICES") or DEFAULT_PUSH_SERVICES).replace(",", " ").split())
        self.PUSH_TIMEOUT = _env_float("PUSH_TIMEOUT", 5)
        # Back-Channel Logout (app/services/backchannel_logout.py): seconds between two looks of each process's
        # courier at the logout tokens owed (0: no courier thread; a commit that queues one wakes it at once),
        # attempts per token, the wait after the first failed one (doubling after each), each post's timeout,
        # and how long a logout token is good for.
        self.BACKCHANNEL_LOGOUT_INTERVAL = _env_float("BACKCHANNEL_LOGOUT_INTERVAL", 2)
        self.BACKCHANNEL_LOGOUT_ATTEMPTS = _env_int("BACKCHANNEL_LOGOUT_ATTEMPTS", 5)
        self.BACKCHANNEL_LOGOUT_RETRY_AFTER = timedelta(seconds=_env_int("BACKCHANNEL_LOGOUT_RETRY_AFTER", 10))
        self.BACKCHANNEL_LOGOUT_TIMEOUT = _env_float("BACKCHANNEL_LOGOUT_TIMEOUT", 5)
        self.BACKCHANNEL_LOGOUT_TOKEN_TTL = timedelta(seconds=_env_int("BACKCHANNEL_LOGOUT_TOKEN_TTL", 120))


class DevelopmentConfig(Config):
    ENV_NAME = "development"

    def __init__(self) -> None:
        super().__init__()
        # Random per installation, kept under instance/: never a constant in the code.
        self.SECRET_KEY = self.SECRET_KEY or _instance_secret(self.INSTANCE_DIR / "secret_key")
        self.NATIONAL_ID_HMAC_KEY = self.NATIONAL_ID_HMAC_KEY or _instance_secret(
            self.INSTANCE_DIR / "national_id_hmac_key"
        )
        self.OIDC_PAIRWISE_KEY = self.OIDC_PAIRWISE_KEY or _instance_secret(self.INSTANCE_DIR / "oidc_pairwise_key")
        self.AGENCY_KEY_ENCRYPTION_KEY = self.AGENCY_KEY_ENCRYPTION_KEY or _instance_secret(
            self.INSTANCE_DIR / "agency_key_encryption_key", _random_base64_key
        )
        if self.VAPID_PRIVATE_KEY is None:  # marked as development's own: production refuses it
            self.VAPID_PRIVATE_KEY = _instance_secret(self.INSTANCE_DIR / "vapid_demo_key.pem", _demo_vapid_key)
            self.VAPID_SUBJECT = self.VAPID_SUBJECT or "mailto:mocert@localhost"
        if self.IDENTITY_CHECK_URL is None and self.SERVE_DEMO_PKI:
            # The demo identity check, served by this same server (``flask run`` answers it on another thread).
            from iccard.demo_pki import identity_check_token

            self.IDENTITY_CHECK_URL = f"{self.PUBLIC_URL}/pki/demo/identity-check"
            self.IDENTITY_CHECK_TOKEN = self.IDENTITY_CHECK_TOKEN or identity_check_token(self.DEMO_PKI_DIR)


class TestingConfig(Config):
    ENV_NAME = "testing"

    def __init__(self) -> None:
        super().__init__()
        self.TESTING = True
        self.MAIL_TO_CONSOLE = False
        self.RATELIMIT_ENABLED = False  # the tests of the limits turn it on
        # Tests seal explicitly (audit_chain.seal) rather than race a thread; the sealer's own tests turn it on.
        self.AUDIT_SEAL_INTERVAL = _env_float("AUDIT_SEAL_INTERVAL", 0)
        # Likewise the logout tokens: tests deliver them explicitly (deliver_due); the browser's starts a courier.
        self.BACKCHANNEL_LOGOUT_INTERVAL = _env_float("BACKCHANNEL_LOGOUT_INTERVAL", 0)
        # Fresh per process, so tests never touch an installation's instance/ secrets.
        self.SECRET_KEY = self.SECRET_KEY or secrets.token_hex(32)
        self.NATIONAL_ID_HMAC_KEY = self.NATIONAL_ID_HMAC_KEY or secrets.token_hex(32)
        self.OIDC_PAIRWISE_KEY = self.OIDC_PAIRWISE_KEY or secrets.token_hex(32)
        self.AGENCY_KEY_ENCRYPTION_KEY = self.AGENCY_KEY_ENCRYPTION_KEY or _random_base64_key()


class ProductionConfig(Config):
    ENV_NAME = "production"


CONFIGS = {c.ENV_NAME: c for c in (DevelopmentConfig, TestingConfig, ProductionConfig)}


def config_from_env() -> Config:
    name = os.environ.get("MOCERT_ENV", "development")
    try:
        return CONFIGS[name]()
    except KeyError:
        refuse_to_start(f"MOCERT_ENV must be one of {', '.join(CONFIGS)}, not {name!r}")


def _demo_vapid_key() -> str:
    from app.webpush import demo_key_pem  # only when development first makes its key: app imports config

    return demo_key_pem()


def _random_base64_key() -> str:
    """32 random bytes in base64: an AES-256 key in the form MOCERT_AGENCY_KEY_ENCRYPTION_KEY takes."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _instance_secret(path: Path, make=lambda: secrets.token_hex(32)) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process (the agent, a worker) made it first
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(make())
    return path.read_text().strip()
