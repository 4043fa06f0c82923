"""The component's answers as pages read them: the image's pixels, the certificate entries, the codes."""

import base64
import json

from iccard.agent import protocol

# The 54-byte header of a real /p11Image.bmp, as a public login page keeps it in a comment.
REAL_HEADER = base64.b64decode("Qk2mFwAAAAAAADYAAAAoAAAA0AcAAAEAAAABABgAAAAAAHAXAAAAAAAAAAAAAAAAAAAAAAAA")


def decode_like_a_page(bitmap: bytes) -> str:
    """What pages do with the canvas: pixel after pixel, stop at a zero B, append fromCharCode(B, G, R).

    A canvas gives each pixel as R, G, B, A; the BMP stores it B, G, R: data[2] is the file's first byte.
    """
    pixels = bitmap[54:]
    out = []
    for i in range(2000):
        b, g, r = pixels[3 * i], pixels[3 * i + 1], pixels[3 * i + 2]
        if b == 0:
            break
        out.append(chr(b) + chr(g) + chr(r))
    return "".join(out)


def test_the_image_has_the_real_components_header_and_size():
    bitmap = protocol.json_bitmap({"ret_code": 0})
    assert bitmap[:54] == REAL_HEADER
    assert len(bitmap) == 6054


def test_a_page_decodes_the_image_to_json_it_can_parse_whatever_its_length():
    for padding in ("", "x", "xy"):  # every remainder of the JSON's length by 3
        answer = {"ret_code": 0, "serverVersion": "1.3.4.9", "slots": [], "pad": padding}
        assert json.loads(decode_like_a_page(protocol.json_bitmap(answer))) == answer


def test_chinese_reaches_the_page_intact_through_single_byte_characters():
    answer = protocol.failure("pkcs11info", protocol.SITE_NOT_TRUSTED)
    text = decode_like_a_page(protocol.json_bitmap(answer))
    assert all(ord(c) < 128 for c in text)
    assert json.loads(text)["message"].startswith("在未授權的網站執行元件")


def test_wrong_pin_codes_are_the_real_components():
    assert protocol.wrong_pin_code(2) == -2147483646
    assert protocol.wrong_pin_code(1) == -2147483647
    assert protocol.wrong_pin_code(0) == 164
    assert protocol.wrong_pin_code(None) == protocol.wrong_pin_code(5) == 0xA0
