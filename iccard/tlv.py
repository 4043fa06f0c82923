"""BER-TLV as smart cards use it: tags of up to three bytes, definite lengths of up to three bytes.

PIV wraps everything in it (data objects, the SELECT answer, GENERAL AUTHENTICATE templates). Both sides of
the wire use this module: the host in :mod:`iccard.piv`, the card in :mod:`iccard.emulator`.
"""

from __future__ import annotations


class TlvError(ValueError):
    """The bytes are not well-formed BER-TLV."""


def encode_tag(tag: int) -> bytes:
    """The tag's bytes (``0x5FC105`` → ``5F C1 05``; a tag is written as the number its bytes form)."""
    if tag < 0:
        raise ValueError("tags are non-negative")
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def encode_length(length: int) -> bytes:
    """The definite length's bytes: one byte below 128, else ``81 xx`` or ``82 xx xx`` (or ``83``)."""
    if length < 0x80:
        return bytes([length])
    size = (length.bit_length() + 7) // 8
    if size > 3:
        raise ValueError(f"length {length} does not fit a card's TLV")
    return bytes([0x80 | size]) + length.to_bytes(size, "big")


def tlv(tag: int, value: bytes = b"") -> bytes:
    """One encoded TLV."""
    return encode_tag(tag) + encode_length(len(value)) + bytes(value)


def read_tlv(data: bytes, offset: int = 0) -> tuple[int, bytes, int]:
    """Read the TLV at ``offset``; returns ``(tag, value, offset after it)``. Raises :class:`TlvError`."""
    end = len(data)
    if offset >= end:
        raise TlvError("no TLV at the end of the data")
    start = offset
    offset += 1
    if data[start] & 0x1F == 0x1F:  # the tag continues while b8 of the following bytes is set
        while True:
            if offset >= end or offset - start >= 3:
                raise TlvError("tag longer than three bytes or truncated")
            offset += 1
            if not data[offset - 1] & 0x80:
                break
    tag = int.from_bytes(data[start:offset], "big")
    if offset >= end:
        raise TlvError(f"tag {tag:X} has no length")
    first = data[offset]
    offset += 1
    if first < 0x80:
        length = first
    else:
        size = first & 0x7F
        if size == 0 or size > 3 or offset + size > end:
            raise TlvError(f"tag {tag:X} has an unsupported or truncated length")
        length = int.from_bytes(data[offset : offset + size], "big")
        offset += size
    if offset + length > end:
        raise TlvError(f"tag {tag:X} claims {length} bytes, {end - offset} remain")
    return tag, bytes(data[offset : offset + length]), offset + length


def parse(data: bytes) -> list[tuple[int, bytes]]:
    """All TLVs of ``data``, in order, as ``(tag, value)``. Raises :class:`TlvError`."""
    items, offset = [], 0
    while offset < len(data):
        tag, value, offset = read_tlv(data, offset)
        items.append((tag, value))
    return items


def parse_dict(data: bytes) -> dict[int, bytes]:
    """The TLVs of ``data`` by tag (the first of each tag wins). Raises :class:`TlvError`."""
    result: dict[int, bytes] = {}
    for tag, value in parse(data):
        result.setdefault(tag, value)
    return result


def unwrap(data: bytes, tag: int) -> bytes:
    """The value of ``data``, which must be exactly one TLV with ``tag``. Raises :class:`TlvError`."""
    found, value, end = read_tlv(data)
    if found != tag or end != len(data):
        raise TlvError(f"expected exactly one TLV {tag:X}, found {found:X}")
    return value
