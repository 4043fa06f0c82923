"""The application's parts, built once in ``create_app`` from its configuration and handed to the services.

Whatever a setting can be wrong about (a key that does not load, a trust root that does not parse, an
origin that is not one) fails here, at startup, with a message that names the setting; nothing is built
lazily on a first request. Views reach the parts through :func:`parts`; services get them passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, current_app

from config import refuse_to_start

from .oidc.keys import CachedKeyRing
from .services.sessions import LoginMarker
from .services.tokens import NationalIdHash

T = TypeVar("T")


@dataclass(frozen=True)
class Parts:
    national_id_hash: NationalIdHash
    login_marker: LoginMarker
    oidc_keys: CachedKeyRing  # the provider's signing keys, read now and again when a key is added


def built_from(setting: str, build: Callable[[], T]) -> T:
    """``build()``, or a refusal to start that names ``setting`` and says what is wrong with it."""
    try:
        return build()
    except Exception as exc:  # noqa: BLE001 - whatever the library raised, the operator reads the setting's name
        refuse_to_start(f"MOCERT_{setting}: {exc}")


def build(config: Mapping[str, Any]) -> Parts:
    return Parts(
        national_id_hash=built_from("NATIONAL_ID_HMAC_KEY", lambda: NationalIdHash(config["NATIONAL_ID_HMAC_KEY"].encode())),
        login_marker=LoginMarker(config["SECRET_KEY"]),
        oidc_keys=built_from("OIDC_KEYS_DIR", lambda: CachedKeyRing.loaded(config["OIDC_KEYS_DIR"])),
    )


def install(app: Flask) -> None:
    app.extensions["mocert"] = build(app.config)


def parts() -> Parts:
    return current_app.extensions["mocert"]
