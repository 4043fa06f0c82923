"""Signing keys: files in a directory, the newest signs, parsed once, required in production."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.oidc.keys import CachedKeyRing, create_key, ensure_keys, read_keys


def test_keys_are_parsed_once_and_again_only_when_a_key_is_added(tmp_path):
    ensure_keys(tmp_path)
    cache = CachedKeyRing(tmp_path)
    first = cache.get()
    assert cache.get() is first
    new = create_key(tmp_path, "ES256")
    assert cache.get() is not first and cache.get().signing_key("ES256").kid == new.kid
    assert ensure_keys(tmp_path) == []  # nothing missing, nothing created


def test_an_old_key_is_published_until_retire_after_its_successor_took_over(tmp_path):
    old = create_key(tmp_path, "RS256", now=1_000)
    new = create_key(tmp_path, "RS256", now=2_000)
    ring = read_keys(tmp_path)
    assert ring.signing_key("RS256").kid == new.kid
    assert {k.kid for k in ring.published(timedelta(seconds=500), now=2_400)} == {old.kid, new.kid}
    assert {k.kid for k in ring.published(timedelta(seconds=500), now=2_600)} == {new.kid}


def test_production_refuses_to_start_without_a_signing_key(app_config, tmp_path):
    from app.security import UnsafeConfiguration, check_production

    config = {name: getattr(app_config, name) for name in dir(app_config) if name.isupper()}
    config["OIDC_KEYS_DIR"] = tmp_path / "empty"
    with pytest.raises(UnsafeConfiguration, match="no OIDC signing key"):
        check_production(config)


def test_a_key_added_later_that_does_not_load_leaves_the_keys_that_did(tmp_path):
    ensure_keys(tmp_path)
    cache = CachedKeyRing.loaded(tmp_path)
    signing = cache.get().signing_key("RS256").kid
    (tmp_path / "9999999999-bad.pem").write_text("not a key")
    assert cache.get().signing_key("RS256").kid == signing
