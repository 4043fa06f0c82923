"""The trust list: sites, and the SHA-1 permission a person gives some of them, kept across restarts."""

import json

import pytest

from iccard.agent.trust import InvalidSite, TrustList


def test_a_trusted_host_covers_its_origins_and_an_origin_only_itself(tmp_path):
    trust = TrustList(tmp_path / "t.json", ("gov.example.tw", "https://bank.example.tw"))
    assert "https://gov.example.tw" in trust and "http://gov.example.tw" in trust
    assert "https://bank.example.tw" in trust and "http://bank.example.tw" not in trust
    assert "https://evil.example" not in trust and "not a site" not in trust


def test_a_bare_host_matches_only_its_origins_without_a_port_and_a_host_with_a_port_only_that_port(tmp_path):
    # What the addDomain page counts on (server._site_asked): domain=localhost would not cover a page on
    # http://localhost:5000, so the page's exact origin is trusted instead.
    trust = TrustList(None, ("localhost", "gov.example.tw:8443"))
    assert "http://localhost" in trust and "https://localhost" in trust
    assert "http://localhost:5000" not in trust
    assert "https://gov.example.tw:8443" in trust and "http://gov.example.tw:8443" in trust
    assert "https://gov.example.tw" not in trust and "https://gov.example.tw:9443" not in trust


def test_the_opaque_origin_null_can_never_be_trusted(tmp_path):
    trust = TrustList(tmp_path / "t.json")
    with pytest.raises(InvalidSite):
        trust.add("null")
    assert "null" not in trust


def test_sha1_is_allowed_only_for_trusted_sites_and_persists(tmp_path):
    path = tmp_path / "t.json"
    trust = TrustList(path)
    site = trust.add("https://old.gov.example.tw/page")
    assert not trust.allows_sha1(site)
    with pytest.raises(InvalidSite):
        trust.set_sha1("https://other.example", True)
    trust.set_sha1(site, True)
    assert TrustList(path).allows_sha1("https://old.gov.example.tw")
    assert json.loads(path.read_text()) == {"sites": [site], "sha1": [site]}
    trust.remove(site)
    reopened = TrustList(path)
    assert site not in reopened and not reopened.allows_sha1(site)


def test_the_first_file_format_a_bare_list_is_read(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(["http://localhost:5000"]))
    trust = TrustList(path)
    assert "http://localhost:5000" in trust and not trust.allows_sha1("http://localhost:5000")
