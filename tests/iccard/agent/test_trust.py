"""The trust list: sites, and the SHA-1 permission a person gives some of them, kept across restarts."""

import json

import pytest

from iccard.agent.trust import InvalidSite, TrustList


def test_a_trusted_host_covers_its_origins_and_an_origin_only_itself(tmp_path):
    trust = TrustList(tmp_path / "t.json", ("gov.example.tw", "https://bank.example.tw"))
    assert "https://gov.example.tw" in trust and "http://gov.example.tw" in trust
    assert "https://bank.example.tw" in trust and "http://bank.example.tw" not in trust
    assert "https://evil.example" not in trust and "not a site" not in trust


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
