"""``flask pki init-demo`` on a demo PKI that is already there: what it adds to one made by an older MoCert."""

import pytest

from iccard.demo_pki import DemoPKI
from tests.support import demo_pki_of_before_encryption_certificates


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_init_demo_gives_the_cards_of_an_older_demo_pki_their_encryption_certificates(app, tmp_path):
    demo_pki_of_before_encryption_certificates(tmp_path / "demo")
    app.config["DEMO_PKI_DIR"] = tmp_path / "demo"
    result = app.test_cli_runner().invoke(args=["pki", "init-demo"])
    assert result.exit_code == 0, result.output
    assert "TEST000000000001: encryption certificate added" in result.output and "already" in result.output
    pki = DemoPKI(tmp_path / "demo")
    for card in pki.cards:
        assert pki.card_encryption_certificate(card).serial_number == card.encryption_serial
    again = app.test_cli_runner().invoke(args=["pki", "init-demo"])
    assert "encryption certificate added" not in again.output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_init_demo_warns_when_the_demo_pki_was_made_for_another_address(app, tmp_path):
    DemoPKI.create(tmp_path / "demo", "http://localhost:5000")
    app.config["DEMO_PKI_DIR"] = tmp_path / "demo"
    app.config["PUBLIC_URL"] = "http://localhost:8000"
    moved = app.test_cli_runner().invoke(args=["pki", "init-demo"])
    assert moved.exit_code == 0
    assert "made for http://localhost:5000, and this server is http://localhost:8000" in moved.output
    app.config["PUBLIC_URL"] = "http://localhost:5000/"
    same = app.test_cli_runner().invoke(args=["pki", "init-demo"])
    assert "warning" not in same.output and "already" in same.output
