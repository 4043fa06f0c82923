"""Reading the URL out of a QR code image: an optional feature (zxing-cpp and Pillow)."""

from __future__ import annotations

from pathlib import Path

from .errors import QrCodeError

INSTALL_HINT = (
    "reading a QR image needs zxing-cpp and Pillow: "
    ".venv/bin/pip install -r requirements-test.txt (or pip install zxing-cpp==3.1.1 pillow==13.0.0)"
)


def read_qr(path: Path | str) -> str:
    """The text of the one QR code in the image at ``path``.

    Raises ``QrCodeError`` when the packages are missing, the image cannot be opened, or it holds no QR code
    or several different ones.
    """
    try:
        import zxingcpp
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:
        raise QrCodeError(INSTALL_HINT) from exc
    try:
        with Image.open(path) as image:
            results = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    except (OSError, UnidentifiedImageError) as exc:
        raise QrCodeError(f"cannot open the image {path}: {exc}") from exc
    texts = sorted({result.text for result in results if result.valid and result.text})
    if not texts:
        raise QrCodeError(f"no QR code found in {path}")
    if len(texts) > 1:
        raise QrCodeError(f"{path} holds {len(texts)} different QR codes; crop it to one")
    return texts[0]
