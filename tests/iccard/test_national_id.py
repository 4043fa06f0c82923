import pytest

from iccard import national_id as nid


@pytest.mark.parametrize("value", ["A123456789", "B223456782", "F131313136", "K120000006", " a123456789 "])
def test_accepts_ids_with_a_correct_check_digit(value):
    assert nid.normalize(value) == value.strip().upper()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("A123456788", "check_digit"),
        ("B123456789", "check_digit"),
        ("A323456789", "format"),  # second character must be 1, 2, 8 or 9
        ("123456789", "format"),
        ("AA23456789", "format"),
        ("A12345678", "format"),
        ("", "format"),
    ],
)
def test_rejects_malformed_ids_saying_why(value, reason):
    with pytest.raises(nid.InvalidNationalId) as raised:
        nid.normalize(value)
    assert raised.value.reason == reason


def test_mask_keeps_only_the_ends():
    assert nid.mask("A123456789") == "A12****789"


def test_keyed_hash_depends_on_the_key_and_normalises_the_id():
    one = nid.keyed_hash("a123456789", b"k1")
    assert one == nid.keyed_hash("A123456789", b"k1")
    assert one != nid.keyed_hash("A123456789", b"k2")
    assert "A123456789" not in one
