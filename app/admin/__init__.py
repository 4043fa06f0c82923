"""Administration: the console (``/admin``) and the same operations as JSON (``/api/v1/admin``)."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from . import api, console

    app.register_blueprint(api.bp)
    app.register_blueprint(console.bp)
