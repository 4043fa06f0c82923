"""The base64url decoder of untrusted fields accepts exactly what the regular expression it replaced did."""

from __future__ import annotations

import base64
import itertools
import os
import random
import re

import pytest

from webauthn._encoding import MAX_FIELD_BYTES, Malformed, b64url_decode, b64url_encode

_REFERENCE = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def reference(value):
    """The decoder before issue 14, kept as the specification: the regex, then the length, then base64."""
    if not isinstance(value, str) or len(value) > MAX_FIELD_BYTES * 4 // 3 + 4 or not _REFERENCE.fullmatch(value):
        return "malformed"
    stripped = value.rstrip("=")
    if len(stripped) % 4 == 1:
        return "malformed"
    return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))


def decoded(value):
    try:
        return b64url_decode(value, "field")
    except Malformed:
        return "malformed"


# Every class of character the two could treat differently: both alphabets, padding, whitespace, NUL,
# non-ASCII (Latin-1 and beyond), and characters binascii skips when not strict.
TRICKY = "AQgw9-_+/= \n\t\x00.!é\u00ff\u4e2d\U0001f600"


def test_every_short_string_of_tricky_characters_is_decoded_or_refused_alike():
    for length in range(5):
        for characters in itertools.product(TRICKY, repeat=length):
            value = "".join(characters)
            assert decoded(value) == reference(value), repr(value)


def test_random_strings_are_decoded_or_refused_alike():
    rng = random.Random(14)
    alphabet = TRICKY + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    for _ in range(20_000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        assert decoded(value) == reference(value), repr(value)


def test_any_base64url_text_decodes_alike_whatever_its_last_bits():
    """Neither refuses non-zero bits after the last whole byte ("AB" and "AC" are both 0x00)."""
    rng = random.Random(15)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for _ in range(20_000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        value += "=" * rng.randint(0, 3)
        assert decoded(value) == reference(value), repr(value)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 32, 70, 1000])
def test_what_is_encoded_decodes_back(size):
    data = os.urandom(size)
    assert b64url_decode(b64url_encode(data), "field") == data


@pytest.mark.parametrize("value", [None, 42, b"AAAA", ["AAAA"], "A" * (MAX_FIELD_BYTES * 4 // 3 + 5)])
def test_what_is_not_a_short_enough_string_is_refused(value):
    assert decoded(value) == reference(value) == "malformed"
