"""Settings come from MOCERT_* variables; production refuses development secrets and the demo PKI."""

import pytest

from config import ProductionConfig, config_from_env


@pytest.fixture
def production_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MOCERT_ENV", "production")
    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("MOCERT_SECRET_KEY", "s" * 64)
    monkeypatch.setenv("MOCERT_OIDC_PAIRWISE_KEY", "p" * 64)
    monkeypatch.setenv("MOCERT_NATIONAL_ID_HMAC_KEY", "h" * 64)
    monkeypatch.setenv("MOCERT_PUBLIC_URL", "https://login.example.tw")
    monkeypatch.setenv("MOCERT_IDENTITY_CHECK_URL", "https://idcheck.example.gov.tw/v1/check")
    monkeypatch.setenv("MOCERT_IDENTITY_CHECK_TOKEN", "t" * 40)
    return monkeypatch


def _create():
    from app import create_app

    return create_app()


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


def test_production_refuses_the_demo_mobile_ca(production_env, pki, shared_trust):
    production_env.setenv("MOCERT_CARD_TRUST_ANCHORS", str(shared_trust / "GRCA-G3.cer"))
    production_env.setenv("MOCERT_CARD_INTERMEDIATES", str(shared_trust / "MOICA-G3.cer"))
    production_env.setenv("MOCERT_MOBILE_CA_CERT", str(pki.directory / "mobile-ca.pem"))
    with pytest.raises(SystemExit, match="demo mobile-certificate CA"):
        _create()


def test_production_refuses_rate_limits_switched_off(production_env, shared_trust, tmp_path):
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


def test_production_starts_with_real_trust_anchors_and_secure_cookies(production_env, shared_trust, tmp_path):
    production_env.setenv("MOCERT_CARD_TRUST_ANCHORS", str(shared_trust / "GRCA-G3.cer"))
    production_env.setenv("MOCERT_CARD_INTERMEDIATES", str(shared_trust / "MOICA-G3.cer"))
    _own_mobile_ca(tmp_path)
    production_env.setenv("MOCERT_MOBILE_CA_CERT", str(tmp_path / "mobile-ca.pem"))
    production_env.setenv("MOCERT_MOBILE_CA_KEY", str(tmp_path / "mobile-ca.key.pem"))
    from app.oidc.keys import ensure_keys

    ensure_keys(tmp_path / "oidc-keys")  # production also needs an OpenID Connect signing key
    app = _create()
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert "demo_pki" not in app.blueprints
    assert isinstance(config_from_env(), ProductionConfig)
