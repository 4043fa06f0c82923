"""Settings come from MOCERT_* variables; production refuses development secrets and the demo PKI."""

import base64
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import re

import pytest

from config import ProductionConfig, config_from_env
from tests.support import free_port as _free_port

REDIS_URL = os.environ.get("MOCERT_TEST_REDIS_URL", "redis://127.0.0.1:6379")


@pytest.fixture
def production_env(monkeypatch, tmp_path):
    for name in ("FLASK_DEBUG", "FLASK_RUN_FROM_CLI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MOCERT_ENV", "production")
    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("MOCERT_SECRET_KEY", secrets.token_hex(32))
    monkeypatch.setenv("MOCERT_OIDC_PAIRWISE_KEY", secrets.token_hex(32))
    monkeypatch.setenv("MOCERT_NATIONAL_ID_HMAC_KEY", secrets.token_hex(32))
    monkeypatch.setenv("MOCERT_AGENCY_KEY_ENCRYPTION_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    monkeypatch.setenv("MOCERT_PUBLIC_URL", "https://login.example.tw")
    monkeypatch.setenv("MOCERT_RATELIMIT_STORAGE_URI", REDIS_URL)
    monkeypatch.setenv("MOCERT_IDENTITY_CHECK_URL", "https://idcheck.example.gov.tw/v1/check")
    monkeypatch.setenv("MOCERT_IDENTITY_CHECK_TOKEN", secrets.token_hex(20))
    return monkeypatch


@pytest.fixture
def safe_production_env(production_env, real_trust, tmp_path):
    """Everything production asks for, so the app starts: a test changes one thing and sees it refused."""
    production_env.setenv("MOCERT_CARD_TRUST_ANCHORS", str(real_trust / "GRCA-G3.cer"))
    production_env.setenv("MOCERT_CARD_INTERMEDIATES", str(real_trust / "MOICA-G3.cer"))
    _own_mobile_ca(tmp_path)
    production_env.setenv("MOCERT_MOBILE_CA_CERT", str(tmp_path / "mobile-ca.pem"))
    production_env.setenv("MOCERT_MOBILE_CA_KEY", str(tmp_path / "mobile-ca.key.pem"))
    from app.oidc.keys import ensure_keys

    ensure_keys(tmp_path / "oidc-keys")  # production also needs an OpenID Connect signing key
    return production_env


def _create():
    from app import create_app

    return create_app()


@pytest.mark.parametrize("value", ["https://a.example https://b.example", "https://a.example,https://b.example:443"])
def test_webauthn_origins_are_a_list_of_origins(monkeypatch, tmp_path, value):
    """Split on spaces or commas, never on ':' (os.pathsep made ``https://a.example`` into ``https`` and ``//a``)."""
    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("MOCERT_WEBAUTHN_ORIGINS", value)
    assert config_from_env().WEBAUTHN_ORIGINS == ("https://a.example", "https://b.example")


def test_a_webauthn_origin_that_is_no_origin_stops_the_start(monkeypatch, tmp_path):
    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("MOCERT_WEBAUTHN_ORIGINS", "https://a.example/login")
    with pytest.raises(SystemExit, match="MOCERT_WEBAUTHN_ORIGINS"):
        config_from_env()


@pytest.fixture
def testing_env(monkeypatch, tmp_path, pki):
    """A testing configuration from the environment over the demo PKI, so the app starts: a test changes one
    thing and sees it refused."""
    monkeypatch.setenv("MOCERT_ENV", "testing")
    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("MOCERT_DEMO_PKI_DIR", str(pki.directory))
    return monkeypatch


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("MOCERT_WEBAUTHN_TRUST", "everything", "MOCERT_WEBAUTHN_TRUST: must be any, roots or mds3, not 'everything'"),
        ("MOCERT_WEBAUTHN_TRUST", "mds3", "MOCERT_WEBAUTHN_TRUST: mds3 needs MOCERT_WEBAUTHN_MDS_BLOB"),
    ],
)
def test_a_wrong_webauthn_trust_stops_the_start(testing_env, name, value, reason):
    """Not a 500 at the first phone binding: create_app refuses, and so flask run and gunicorn."""
    testing_env.setenv(name, value)
    with pytest.raises(SystemExit, match=reason):
        _create()


def test_trust_roots_that_do_not_load_stop_the_start(testing_env, tmp_path):
    testing_env.setenv("MOCERT_WEBAUTHN_TRUST", "roots")
    testing_env.setenv("MOCERT_WEBAUTHN_ATTESTATION_ROOTS", str(tmp_path / "missing-root.pem"))
    with pytest.raises(SystemExit, match="MOCERT_WEBAUTHN_TRUST: .*missing-root.pem"):
        _create()


def test_the_configured_trust_policy_and_origins_are_built_at_startup(testing_env, pki):
    testing_env.setenv("MOCERT_WEBAUTHN_TRUST", "roots")
    testing_env.setenv("MOCERT_WEBAUTHN_ATTESTATION_ROOTS", str(pki.directory / "root.pem"))
    testing_env.setenv("MOCERT_WEBAUTHN_ORIGINS", "https://a.example https://b.example")
    testing_env.setenv("MOCERT_PUBLIC_URL", "https://login.example.tw")
    app = _create()
    with app.app_context():
        from app.wiring import parts

        relying_party = parts().relying_party
    assert relying_party.origins == ("https://a.example", "https://b.example")
    assert relying_party.id == "login.example.tw"


@pytest.mark.parametrize("setting", ["MOCERT_MOBILE_CA_CERT", "MOCERT_MOBILE_CA_KEY"])
def test_a_mobile_ca_that_does_not_load_stops_the_start(testing_env, tmp_path, setting):
    (tmp_path / "broken.pem").write_text("not a PEM file")
    testing_env.setenv(setting, str(tmp_path / "broken.pem"))
    with pytest.raises(SystemExit, match=setting):
        _create()


def test_a_mobile_ca_key_of_another_certificate_stops_the_start(testing_env, tmp_path):
    _own_mobile_ca(tmp_path)  # its key, beside the demo's certificate
    testing_env.setenv("MOCERT_MOBILE_CA_KEY", str(tmp_path / "mobile-ca.key.pem"))
    with pytest.raises(SystemExit, match="MOCERT_MOBILE_CA_KEY: .* is not the key of the certificate"):
        _create()


def test_a_missing_mobile_ca_stops_the_start_unless_it_is_the_demos_not_made_yet(testing_env, tmp_path, pki):
    testing_env.setenv("MOCERT_MOBILE_CA_CERT", str(tmp_path / "nowhere.pem"))
    with pytest.raises(SystemExit, match="MOCERT_MOBILE_CA_CERT"):
        _create()
    # A fresh checkout: `make run` migrates the database (so starts the app) before `flask pki init-demo`.
    testing_env.delenv("MOCERT_MOBILE_CA_CERT")
    testing_env.setenv("MOCERT_CARD_TRUST_ANCHORS", str(pki.directory / "root.pem"))
    testing_env.setenv("MOCERT_CARD_INTERMEDIATES", str(pki.directory / "issuer.pem"))
    testing_env.setenv("MOCERT_DEMO_PKI_DIR", str(tmp_path / "demo-pki-to-come"))
    assert _create() is not None


def test_gunicorn_ends_with_the_reason_when_the_webauthn_trust_is_wrong(testing_env):
    testing_env.setenv("MOCERT_WEBAUTHN_TRUST", "everything")
    status, output = _run_to_exit(_gunicorn(_free_port()))
    assert status != 0 and "MOCERT_WEBAUTHN_TRUST" in output
    assert output.count("Booting worker") <= 2


def test_an_oidc_signing_key_that_does_not_load_stops_the_start(monkeypatch, tmp_path):
    """Read when the app is made, not at the first token (a 500 then): the refusal names the setting and the file."""
    keys = tmp_path / "oidc-keys"
    keys.mkdir()
    (keys / "1700000000-bad.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path))
    with pytest.raises(SystemExit, match="MOCERT_OIDC_KEYS_DIR: .*1700000000-bad.pem"):
        _create()


def test_oidc_keys_in_a_file_instead_of_a_directory_stop_the_start(monkeypatch, tmp_path):
    (tmp_path / "keys.pem").write_text("a file, not the directory of keys")
    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("MOCERT_OIDC_KEYS_DIR", str(tmp_path / "keys.pem"))
    with pytest.raises(SystemExit, match="MOCERT_OIDC_KEYS_DIR: .* is not a directory"):
        _create()
@pytest.mark.parametrize("name", ["MOCERT_CARD_TRUST_ANCHORS", "MOCERT_CARD_INTERMEDIATES"])
def test_a_card_trust_file_that_is_no_certificate_stops_the_start(monkeypatch, tmp_path, name):
    """The card verifier is built at startup: a wrong file is a refusal to start, not a 500 at a first login."""
    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path))
    not_a_certificate = tmp_path / "root.pem"
    not_a_certificate.write_text("-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n")
    monkeypatch.setenv(name, str(not_a_certificate))
    with pytest.raises(SystemExit, match=f"{name}: .*root.pem is not a certificate") as refused:
        _create()
    assert refused.value.code == 4  # APP_LOAD_ERROR: gunicorn halts


def test_development_starts_before_its_demo_pki_is_made(monkeypatch, tmp_path):
    """``flask db upgrade`` and ``flask pki init-demo`` run before the demo's root exists: no card is trusted yet."""
    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path))
    from app.services.card_login import NoTrustedIssuer

    assert isinstance(_create().extensions["mocert"].card_logins.verifier, NoTrustedIssuer)


def test_settings_come_from_mocert_environment_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("MOCERT_DATABASE_URL", "postgresql+psycopg://db.example/mocert")
    monkeypatch.setenv("MOCERT_SMTP_HOST", "mail.example")
    monkeypatch.setenv("MOCERT_SMTP_PORT", "2525")
    monkeypatch.setenv("MOCERT_PUBLIC_URL", "https://login.example.tw/")
    monkeypatch.setenv("MOCERT_CARD_TRUST_ANCHORS", "/etc/mocert/GRCA-G3.cer")
    monkeypatch.setenv("MOCERT_CARD_INTERMEDIATES", "/etc/mocert/MOICA-G2.cer,/etc/mocert/MOICA-G3.cer")
    config = config_from_env()
    assert config.SQLALCHEMY_DATABASE_URI == "postgresql+psycopg://db.example/mocert"
    assert (config.SMTP_HOST, config.SMTP_PORT) == ("mail.example", 2525)
    assert config.PUBLIC_URL == "https://login.example.tw"
    assert config.CARD_TRUST_ANCHORS == ("/etc/mocert/GRCA-G3.cer",)
    assert config.CARD_INTERMEDIATES == ("/etc/mocert/MOICA-G2.cer", "/etc/mocert/MOICA-G3.cer")


def test_development_makes_its_own_random_secrets_under_instance(monkeypatch, tmp_path):
    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path))
    first, second = config_from_env(), config_from_env()
    assert len(first.SECRET_KEY) == 64 and first.SECRET_KEY == second.SECRET_KEY
    assert first.NATIONAL_ID_HMAC_KEY != first.SECRET_KEY
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_development_makes_its_own_agency_key_encryption_key_under_instance(monkeypatch, tmp_path):
    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path))
    monkeypatch.delenv("MOCERT_AGENCY_KEY_ENCRYPTION_KEY", raising=False)
    first, second = config_from_env(), config_from_env()
    assert len(base64.b64decode(first.AGENCY_KEY_ENCRYPTION_KEY, validate=True)) == 32
    assert first.AGENCY_KEY_ENCRYPTION_KEY == second.AGENCY_KEY_ENCRYPTION_KEY
    assert (tmp_path / "agency_key_encryption_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("value", "refusal"),
    [
        (None, "MOCERT_AGENCY_KEY_ENCRYPTION_KEY must be set"),
        ("not base64 at all!", "not base64 at all"),
        (base64.b64encode(secrets.token_bytes(16)).decode(), "not of 16 bytes"),
        (secrets.token_hex(32), "not of 48 bytes"),  # hex is no base64 of 32 bytes
        (base64.b64encode(bytes(32)).decode(), "must be 32 random bytes"),
        (base64.b64encode(bytes(range(32))).decode(), "must be 32 random bytes"),
    ],
    # Ids of their own: the random values differ between the parallel workers, which must collect alike.
    ids=["missing", "not-base64", "16-bytes", "hex", "zeros", "counting"],
)
def test_production_refuses_a_missing_or_malformed_agency_key_encryption_key(safe_production_env, value, refusal):
    if value is None:
        safe_production_env.delenv("MOCERT_AGENCY_KEY_ENCRYPTION_KEY")
    else:
        safe_production_env.setenv("MOCERT_AGENCY_KEY_ENCRYPTION_KEY", value)
    with pytest.raises(SystemExit, match=re.escape(refusal)):
        _create()


def test_a_malformed_agency_key_encryption_key_stops_the_start_in_development_too(monkeypatch, tmp_path):
    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("MOCERT_AGENCY_KEY_ENCRYPTION_KEY", "too-short")
    with pytest.raises(SystemExit, match="MOCERT_AGENCY_KEY_ENCRYPTION_KEY"):
        _create()


def test_production_refuses_the_demo_pki(production_env, pki):
    production_env.setenv("MOCERT_DEMO_PKI_DIR", str(pki.directory))
    with pytest.raises(SystemExit, match="demo PKI"):
        _create()


def test_production_refuses_missing_secrets(production_env, tmp_path):
    production_env.delenv("MOCERT_SECRET_KEY")
    production_env.setenv("MOCERT_CARD_TRUST_ANCHORS", str(tmp_path / "real-root.pem"))
    with pytest.raises(SystemExit, match="MOCERT_SECRET_KEY") as refused:
        _create()
    assert "real-root.pem (a card trust anchor or intermediate) does not exist" in str(refused.value)


def test_production_refuses_a_demo_root_copied_elsewhere(production_env, pki, tmp_path):
    copied = tmp_path / "root.pem"
    copied.write_bytes((pki.directory / "root.pem").read_bytes())
    production_env.setenv("MOCERT_CARD_TRUST_ANCHORS", str(copied))
    production_env.setenv("MOCERT_CARD_INTERMEDIATES", str(copied))
    with pytest.raises(SystemExit, match="demo PKI"):
        _create()


def test_production_refuses_moica_profile_demo_cas_copied_elsewhere(production_env, moica_pki, real_trust, tmp_path):
    # Named exactly as the real GRCA and MOICA, on our keys: only the key identifier tells them apart.
    for name in ("GRCA-G3.pem", "GRCA-G2.pem", "MOICA-G3.pem", "MOICA-G2.pem"):
        (tmp_path / name).write_bytes((moica_pki.directory / name).read_bytes())
    production_env.setenv(
        "MOCERT_CARD_TRUST_ANCHORS", f"{real_trust / 'GRCA-G3.cer'},{tmp_path / 'GRCA-G3.pem'},{tmp_path / 'GRCA-G2.pem'}"
    )
    production_env.setenv("MOCERT_CARD_INTERMEDIATES", f"{tmp_path / 'MOICA-G3.pem'},{tmp_path / 'MOICA-G2.pem'}")
    with pytest.raises(SystemExit) as refused:
        _create()
    refused_files = re.findall(r"([^/\s]+) is the demo PKI", str(refused.value))
    assert sorted(refused_files) == ["GRCA-G2.pem", "GRCA-G3.pem", "MOICA-G2.pem", "MOICA-G3.pem"]  # not GRCA-G3.cer


def _own_mobile_ca(directory):
    from datetime import datetime, timedelta, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Agency Mobile CA")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / "mobile-ca.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "mobile-ca.key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def test_production_refuses_the_demo_mobile_ca(production_env, pki, real_trust):
    production_env.setenv("MOCERT_CARD_TRUST_ANCHORS", str(real_trust / "GRCA-G3.cer"))
    production_env.setenv("MOCERT_CARD_INTERMEDIATES", str(real_trust / "MOICA-G3.cer"))
    production_env.setenv("MOCERT_MOBILE_CA_CERT", str(pki.directory / "mobile-ca.pem"))
    with pytest.raises(SystemExit, match="demo mobile-certificate CA"):
        _create()


def test_production_refuses_rate_limits_switched_off(production_env, real_trust, tmp_path):
    production_env.setenv("MOCERT_RATELIMIT_ENABLED", "false")
    with pytest.raises(SystemExit, match="RATELIMIT_ENABLED must stay on"):
        _create()


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        (None, "MOCERT_IDENTITY_CHECK_URL must name the identity-check service"),
        ("https://login.example.tw/pki/demo/identity-check", "the demo identity check"),
        ("http://idcheck.example.gov.tw/v1/check", "MOCERT_IDENTITY_CHECK_URL must be https://"),
    ],
)
def test_production_refuses_a_missing_demo_or_plain_http_identity_check(production_env, url, refusal):
    if url is None:
        production_env.delenv("MOCERT_IDENTITY_CHECK_URL")
    else:
        production_env.setenv("MOCERT_IDENTITY_CHECK_URL", url)
    with pytest.raises(SystemExit, match=refusal):
        _create()


def test_production_refuses_an_identity_check_without_its_credential(production_env):
    production_env.delenv("MOCERT_IDENTITY_CHECK_TOKEN")
    with pytest.raises(SystemExit, match="MOCERT_IDENTITY_CHECK_TOKEN must be set"):
        _create()


def test_development_asks_the_demo_identity_check_it_serves(monkeypatch, tmp_path):
    from iccard.demo_pki import identity_check_token

    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path))
    monkeypatch.delenv("MOCERT_PUBLIC_URL", raising=False)
    monkeypatch.delenv("MOCERT_IDENTITY_CHECK_URL", raising=False)
    monkeypatch.setenv("PORT", "5000")
    config = config_from_env()
    assert config.IDENTITY_CHECK_URL == "http://localhost:5000/pki/demo/identity-check"
    assert config.IDENTITY_CHECK_TOKEN == identity_check_token(tmp_path / "demo-pki")
    assert (tmp_path / "demo-pki" / "identity-check.token").stat().st_mode & 0o077 == 0
    monkeypatch.setenv("MOCERT_IDENTITY_CHECK_URL", "https://idcheck.example.gov.tw/v1/check")
    assert config_from_env().IDENTITY_CHECK_TOKEN is None  # the demo's credential goes to the demo only


def test_production_starts_with_real_trust_anchors_and_secure_cookies(safe_production_env):
    app = _create()
    assert app.debug is False
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert "demo_pki" not in app.blueprints
    assert isinstance(config_from_env(), ProductionConfig)


# -- the debugger --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true"])
def test_production_refuses_debug_mode_from_flask_debug(safe_production_env, value):
    # FLASK_DEBUG is also what `flask run --debug` and `flask --debug run` set before the factory runs.
    safe_production_env.setenv("FLASK_DEBUG", value)
    with pytest.raises(SystemExit, match="debug mode must be off"):
        _create()


def test_production_refuses_debug_switched_on_after_the_factory(safe_production_env):
    # What `flask run` does after the factory (app.debug = get_debug_flag()), and what any caller could do.
    app = _create()
    with pytest.raises(SystemExit, match="debug mode must be off"):
        app.debug = True
    assert app.debug is False
    app.debug = False  # switching it off stays possible


@pytest.mark.parametrize(
    "arguments", [{"debug": True}, {"use_debugger": True}, {"use_reloader": True}],
)
def test_production_refuses_app_run_with_the_debugger_or_the_reloader(safe_production_env, monkeypatch, arguments):
    import werkzeug.serving

    served = []
    monkeypatch.setattr(werkzeug.serving, "run_simple", lambda *args, **kwargs: served.append(kwargs))
    app = _create()
    with pytest.raises(SystemExit, match="debugger|reloader|debug mode"):
        app.run(**arguments)
    assert served == []


def test_the_refusal_exits_with_gunicorns_app_load_error(production_env):
    # A worker exiting with status 4 makes gunicorn's master halt ("App failed to load.") instead of
    # booting another worker that is refused again, forever.
    from gunicorn.arbiter import Arbiter

    production_env.delenv("MOCERT_SECRET_KEY")
    with pytest.raises(SystemExit) as refused:
        _create()
    assert refused.value.code == Arbiter.APP_LOAD_ERROR
    assert "MOCERT_SECRET_KEY" in str(refused.value)


# -- rate-limit storage --------------------------------------------------------------------------------


@pytest.mark.parametrize("uri", ["memory://", "memory:///", "MEMORY://"])
def test_production_refuses_per_worker_rate_limit_storage(safe_production_env, uri):
    safe_production_env.setenv("MOCERT_RATELIMIT_STORAGE_URI", uri)
    with pytest.raises(SystemExit, match="MOCERT_RATELIMIT_STORAGE_URI must be shared storage"):
        _create()


def test_production_refuses_a_missing_rate_limit_storage(safe_production_env):
    safe_production_env.setenv("MOCERT_RATELIMIT_STORAGE_URI", "")
    with pytest.raises(SystemExit, match="MOCERT_RATELIMIT_STORAGE_URI must be shared storage"):
        _create()


def test_production_starts_with_redis_rate_limit_storage(safe_production_env):
    app = _create()
    assert app.config["RATELIMIT_STORAGE_URI"] == REDIS_URL
    from app.extensions import limiter

    assert type(limiter.limiter.storage).__name__ == "RedisStorage"


# -- secrets -------------------------------------------------------------------------------------------

TRIVIAL_SECRETS = [
    "s" * 64,
    "ab" * 20,
    "0123456789abcdef" * 2,
    "changemechangemechangemechangeme",
    "abcdefghijklmnopqrstuvwxyz012345",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "12345678901234567890123456789012",
    "zyxwvutsrqponmlkjihgfedcba9876543210",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
    "acegikmoqsuwy02468acegikmoqsuwy0",
    "0000000000000000000000000000000000000000000000000000000000000001",
    "passwordpasswordpasswordpassword1",
]


SECRET_NAMES = ("SECRET_KEY", "NATIONAL_ID_HMAC_KEY", "OIDC_PAIRWISE_KEY")


@pytest.mark.parametrize("name, value", [(SECRET_NAMES[i % 3], value) for i, value in enumerate(TRIVIAL_SECRETS)])
def test_production_refuses_a_trivial_secret(safe_production_env, name, value):
    safe_production_env.setenv(f"MOCERT_{name}", value)
    with pytest.raises(SystemExit, match=f"MOCERT_{name} must be set to a random value"):
        _create()


def test_real_random_secrets_are_never_taken_for_trivial():
    from app.security import secret_weakness

    makers = [
        lambda: secrets.token_hex(16),  # openssl rand -hex 16: the shortest accepted
        lambda: secrets.token_hex(32),
        lambda: secrets.token_urlsafe(24),
        lambda: secrets.token_urlsafe(32),
        lambda: base64.b64encode(secrets.token_bytes(32)).decode(),  # openssl rand -base64 32
        lambda: "".join(secrets.choice("0123456789") for _ in range(40)),  # digits only, 133 bits
    ]
    refused = [value for make in makers for value in (make() for _ in range(2000)) if secret_weakness(value)]
    assert refused == []


def test_a_short_secret_is_refused_with_its_length_rule(safe_production_env):
    safe_production_env.setenv("MOCERT_SECRET_KEY", secrets.token_hex(15))  # 30 characters
    with pytest.raises(SystemExit, match="at least 32 characters"):
        _create()


@pytest.mark.parametrize(
    "first, second",
    [("SECRET_KEY", "NATIONAL_ID_HMAC_KEY"), ("SECRET_KEY", "OIDC_PAIRWISE_KEY"),
     ("NATIONAL_ID_HMAC_KEY", "OIDC_PAIRWISE_KEY")],
)
def test_production_refuses_one_secret_for_two_purposes(safe_production_env, first, second):
    shared = secrets.token_hex(32)
    safe_production_env.setenv(f"MOCERT_{first}", shared)
    safe_production_env.setenv(f"MOCERT_{second}", shared)
    with pytest.raises(SystemExit, match=f"MOCERT_{first} and MOCERT_{second} must differ"):
        _create()


# -- starting for real: gunicorn and flask run end with the reason -------------------------------------

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run_to_exit(command, timeout=30):
    """Run a server command to its end; one still running after ``timeout`` seconds fails the test."""
    process = subprocess.Popen(
        command, cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{command} still running after {timeout}s:\n{output[-4000:]}")
    return process.returncode, output


def _gunicorn(port):
    # No control socket: by default every gunicorn of this user shares one path for it.
    return [str(BIN / "gunicorn"), "--workers", "2", "--bind", f"127.0.0.1:{port}", "--no-control-socket", "wsgi:app"]


def test_gunicorn_ends_with_the_reason_when_production_is_refused(production_env):
    production_env.delenv("MOCERT_SECRET_KEY")
    started = time.monotonic()
    status, output = _run_to_exit(_gunicorn(_free_port()))
    assert status != 0
    assert "refusing to start in production" in output and "MOCERT_SECRET_KEY must be set" in output
    assert output.count("Booting worker") <= 2  # the master halted instead of booting workers again
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [("MOCERT_CARD_REVOCATION_HOSTS", "ftp://crl.example", "MOCERT_CARD_REVOCATION_HOSTS"),
     ("MOCERT_ENV", "staging", "MOCERT_ENV must be one of")],
)
def test_gunicorn_ends_with_the_reason_when_any_setting_is_refused(monkeypatch, tmp_path, name, value, reason):
    """Not only production's checks: a setting refused while the configuration is read ends gunicorn too."""
    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv(name, value)
    status, output = _run_to_exit(_gunicorn(_free_port()))
    assert status != 0 and reason in output
    assert output.count("Booting worker") <= 2


def test_gunicorn_serves_a_safe_production_configuration(safe_production_env):
    port = _free_port()
    process = subprocess.Popen(
        _gunicorn(port), cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )
    try:
        deadline, answer = time.monotonic() + 30, None
        while answer is None and time.monotonic() < deadline and process.poll() is None:
            try:
                answer = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status
            except OSError:
                time.sleep(0.2)
        assert answer == 200, process.poll()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
    assert "refusing" not in output


def test_flask_run_ends_with_the_reason_when_production_is_refused(production_env):
    production_env.delenv("MOCERT_SECRET_KEY")
    status, output = _run_to_exit([sys.executable, "-m", "flask", "--app", "wsgi", "run", "--port", str(_free_port())])
    assert status != 0
    assert "refusing to start in production" in output and "MOCERT_SECRET_KEY must be set" in output


@pytest.mark.parametrize(
    "options, reason",
    [
        (["run", "--debug"], "debug mode must be off"),
        (["--debug", "run"], "debug mode must be off"),
        (["run", "--debugger"], "the debugger must be off"),
        (["run", "--reload"], "the reloader must be off"),
    ],
)
def test_flask_run_with_the_debugger_is_refused_in_production(safe_production_env, options, reason):
    command = [sys.executable, "-m", "flask", "--app", "wsgi", *options, "--port", str(_free_port())]
    status, output = _run_to_exit(command)
    assert status != 0
    assert "refusing to start in production" in output and reason in output
    assert "Running on" not in output


# -- settings no environment runs with -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MOCERT_CARD_LOGIN_RATE_LIMIT", "30 a minute"),
        ("MOCERT_BINDING_TTL", "0"),
        ("MOCERT_EMAIL_CODE_TTL_MINUTES", "-5"),
        ("MOCERT_DEVICE_LIMIT", "0"),
        ("MOCERT_IDENTITY_CHECK_TIMEOUT", "0"),
        ("MOCERT_SQLITE_BUSY_TIMEOUT", "-1"),
        ("MOCERT_CARD_REVOCATION_MODE", "off"),
        ("MOCERT_PUBLIC_URL", "login.example.tw"),
        ("MOCERT_PUBLIC_URL", "https://login.example.tw/mocert"),
    ],
)
def test_a_setting_that_cannot_work_stops_the_start_and_is_named(monkeypatch, tmp_path, variable, value):
    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit, match=variable) as refused:
        _create()
    assert refused.value.code == 4


def test_every_unworkable_setting_is_named_at_once(monkeypatch, tmp_path):
    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("MOCERT_PHONE_RATE_LIMIT", "often")
    monkeypatch.setenv("MOCERT_SESSION_HOURS", "0")
    with pytest.raises(SystemExit) as refused:
        _create()
    assert "MOCERT_PHONE_RATE_LIMIT" in str(refused.value) and "MOCERT_SESSION_HOURS" in str(refused.value)


@pytest.mark.parametrize("variable", ["MOCERT_DEVICE_LIMIT", "MOCERT_SMTP_TIMEOUT"])
def test_a_number_that_is_no_number_stops_the_start_and_is_named(monkeypatch, tmp_path, variable):
    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv(variable, "five")
    with pytest.raises(SystemExit, match=f"{variable} must be") as refused:
        config_from_env()
    assert refused.value.code == 4


@pytest.mark.parametrize(
    ("settings", "refusal"),
    [
        ({"MOCERT_CARD_REVOCATION_MODE": "soft-fail"}, "MOCERT_CARD_REVOCATION_MODE must be hard-fail"),
        ({"MOCERT_MAIL_TO_CONSOLE": "1"}, "MOCERT_MAIL_TO_CONSOLE must be off"),
        ({"MOCERT_SMTP_HOST": "mail.example.tw", "MOCERT_SMTP_USERNAME": "mocert"}, "MOCERT_SMTP_STARTTLS must be on"),
        ({"MOCERT_WEBAUTHN_ORIGINS": "https://login.example.tw http://login.example.tw"}, "MOCERT_WEBAUTHN_ORIGINS must"),
    ],
)
def test_production_refuses_settings_that_weaken_a_check(safe_production_env, settings, refusal):
    for name, value in settings.items():
        safe_production_env.setenv(name, value)
    with pytest.raises(SystemExit, match=refusal):
        _create()


def test_production_sends_mail_with_a_password_over_starttls_or_on_this_machine(safe_production_env):
    safe_production_env.setenv("MOCERT_SMTP_USERNAME", "mocert")
    safe_production_env.setenv("MOCERT_SMTP_HOST", "localhost")
    _create()
    safe_production_env.setenv("MOCERT_SMTP_HOST", "mail.example.tw")
    safe_production_env.setenv("MOCERT_SMTP_STARTTLS", "1")
    _create()


@pytest.mark.parametrize("content", ["not json", '{"name": "a desk"}', '[{"phone": "02-1234-5678"}]'])
def test_a_support_contacts_file_that_is_no_list_of_contacts_stops_the_start(monkeypatch, tmp_path, content):
    (tmp_path / "contacts.json").write_text(content)
    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("MOCERT_SUPPORT_CONTACTS_FILE", str(tmp_path / "contacts.json"))
    with pytest.raises(SystemExit, match="MOCERT_SUPPORT_CONTACTS_FILE"):
        _create()


# -- Web Push (VAPID) ------------------------------------------------------------------------------------


def _vapid_pem(curve=None) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(curve or ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def test_development_makes_its_own_marked_vapid_key_under_instance(monkeypatch, tmp_path):
    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path))
    monkeypatch.delenv("MOCERT_VAPID_PRIVATE_KEY", raising=False)
    first, second = config_from_env(), config_from_env()
    assert first.VAPID_PRIVATE_KEY == second.VAPID_PRIVATE_KEY
    assert "-----BEGIN PRIVATE KEY-----" in first.VAPID_PRIVATE_KEY
    assert first.VAPID_SUBJECT.startswith("mailto:")
    assert (tmp_path / "vapid_demo_key.pem").stat().st_mode & 0o077 == 0
    from app.wiring import parts

    with _create().app_context():
        assert parts().push_notices.enabled


def test_production_refuses_developments_vapid_key_and_starts_with_its_own(safe_production_env, tmp_path):
    from app.webpush import demo_key_pem

    safe_production_env.setenv("MOCERT_VAPID_SUBJECT", "mailto:ops@login.example.tw")
    (tmp_path / "copied.pem").write_text(demo_key_pem())
    for demo in (demo_key_pem(), str(tmp_path / "copied.pem")):
        safe_production_env.setenv("MOCERT_VAPID_PRIVATE_KEY", demo)
        with pytest.raises(SystemExit, match="MOCERT_VAPID_PRIVATE_KEY is a development key"):
            _create()
    safe_production_env.setenv("MOCERT_VAPID_PRIVATE_KEY", _vapid_pem())
    from app.wiring import parts

    with _create().app_context():
        assert parts().push_notices.enabled


def test_production_without_a_vapid_key_starts_with_notices_off(safe_production_env):
    from app.wiring import parts

    with _create().app_context():
        assert not parts().push_notices.enabled and parts().push_notices.application_server_key is None


@pytest.mark.parametrize(("settings", "named"), [
    ({"MOCERT_VAPID_PRIVATE_KEY": "/nonexistent/vapid.pem"}, "MOCERT_VAPID_PRIVATE_KEY"),
    ({"MOCERT_VAPID_PRIVATE_KEY": "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----"},
     "MOCERT_VAPID_PRIVATE_KEY"),
    ({"MOCERT_VAPID_PRIVATE_KEY": "P-384", "MOCERT_VAPID_SUBJECT": "mailto:ops@example.tw"},
     "MOCERT_VAPID_PRIVATE_KEY"),
    ({"MOCERT_VAPID_PRIVATE_KEY": "P-256"}, "MOCERT_VAPID_SUBJECT"),
    ({"MOCERT_VAPID_PRIVATE_KEY": "P-256", "MOCERT_VAPID_SUBJECT": "ops@example.tw"}, "MOCERT_VAPID_SUBJECT"),
    ({"MOCERT_PUSH_SERVICES": "fcm.googleapis.com"}, "MOCERT_PUSH_SERVICES"),
    ({"MOCERT_PUSH_SERVICES": "http://push.example.tw"}, "MOCERT_PUSH_SERVICES"),
    ({"MOCERT_PUSH_TIMEOUT": "0"}, "MOCERT_PUSH_TIMEOUT"),
    ({"MOCERT_INBOX_TTL": "0"}, "MOCERT_INBOX_TTL"),
])
def test_web_push_settings_that_cannot_work_stop_the_start_and_are_named(monkeypatch, tmp_path, settings, named):
    from cryptography.hazmat.primitives.asymmetric import ec

    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path))
    monkeypatch.delenv("MOCERT_VAPID_SUBJECT", raising=False)
    for name, value in settings.items():
        curves = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}
        monkeypatch.setenv(name, _vapid_pem(curves[value]) if value in curves else value)
    with pytest.raises(SystemExit, match=named) as refused:
        _create()
    assert refused.value.code == 4


@pytest.mark.parametrize("value", ["Mars/Olympus_Mons", "../../etc/passwd", " "])
def test_a_display_timezone_no_system_knows_stops_the_start(testing_env, value):
    testing_env.setenv("MOCERT_DISPLAY_TIMEZONE", value)
    with pytest.raises(SystemExit, match="MOCERT_DISPLAY_TIMEZONE"):
        _create()


def test_pages_show_taiwan_time_unless_another_zone_is_configured(testing_env):
    assert _create().config["DISPLAY_TIMEZONE"] == "Asia/Taipei"
    testing_env.setenv("MOCERT_DISPLAY_TIMEZONE", "Europe/Berlin")
    assert _create().config["DISPLAY_TIMEZONE"] == "Europe/Berlin"
