"""Reading a binding URL back out of a QR image (an optional feature: zxing-cpp and Pillow)."""

from __future__ import annotations

import sys

import pytest

from tests.support import missing
from webauthn.phone import QrCodeError, read_qr

URL = "https://auth.example.tw/m/bind/Zm9vYmFyYmF6cXV4LXRva2VuLTEyMzQ1Njc4OTA"


@pytest.fixture
def make_qr_png(tmp_path):
    """Write a QR PNG of some text with qrcode, as the server will draw it."""
    try:
        import PIL  # noqa: F401 (qrcode draws PNGs with Pillow)
        import qrcode
    except ImportError as exc:
        missing(f"qrcode and Pillow are needed to draw QR codes: {exc}")

    def make(text: str, name: str = "qr.png"):
        path = tmp_path / name
        qrcode.make(text).save(path)
        return path

    return make


@pytest.fixture
def zxing():
    try:
        import zxingcpp
    except ImportError as exc:
        missing(f"zxing-cpp reads QR codes (requirements-test.txt): {exc}")
    return zxingcpp


def test_a_qr_png_of_a_binding_url_reads_back_as_that_url(make_qr_png, zxing):
    assert read_qr(make_qr_png(URL)) == URL


def test_an_image_without_a_qr_code_is_an_error(tmp_path, make_qr_png, zxing):
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    with pytest.raises(QrCodeError, match="no QR code"):
        read_qr(blank)


def test_a_file_that_is_no_image_is_an_error(tmp_path, make_qr_png, zxing):
    text = tmp_path / "not-an-image.png"
    text.write_text("hello")
    with pytest.raises(QrCodeError, match="cannot open"):
        read_qr(text)


def test_without_zxing_cpp_it_says_how_to_install_it(make_qr_png, monkeypatch):
    path = make_qr_png(URL)
    monkeypatch.setitem(sys.modules, "zxingcpp", None)  # as if not installed

    with pytest.raises(QrCodeError, match=r"pip install .*zxing-cpp"):
        read_qr(path)
