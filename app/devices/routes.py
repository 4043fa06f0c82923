"""Thin views over ``services.devices``: the computer's binding page and API, the person's devices, and
the phone's binding page and API."""

from __future__ import annotations

from flask import Response, current_app, jsonify, render_template, request
from flask_login import current_user, login_required

from .. import refusals
from ..api import json_body
from ..errors import error_page
from ..extensions import limiter
from ..services import devices
from ..services.refusals import Refusal
from ..wiring import parts
from . import bp, phone_bp


@bp.get("/account/devices/bind")
@login_required
def bind_page():
    return render_template("bind.html")


@bp.post("/api/v1/bindings")
@login_required
def create_binding():
    service = parts().devices
    binding, token = service.create_binding(current_user, current_user.auth_session)
    url = service.binding_url(token)
    return jsonify(
        binding_id=binding.public_id,
        url=url,
        qr_svg=devices.qr_svg(url),
        expires_in=int((binding.expires_at - binding.created_at).total_seconds()),
    ), 201


@bp.get("/api/v1/bindings/<binding_id>")
@login_required
def binding_status(binding_id: str):
    return jsonify(devices.binding_status(current_user, binding_id))


@bp.get("/api/v1/devices")
@login_required
def list_devices():
    return jsonify(devices=[devices.device_view(d) for d in devices.list_devices(current_user)])


@bp.patch("/api/v1/devices/<int:device_id>")
@login_required
def rename_device(device_id: int):
    return jsonify(device=devices.device_view(devices.rename(current_user, device_id, json_body().get("name"))))


@bp.delete("/api/v1/devices/<int:device_id>")
@login_required
def unbind_device(device_id: int):
    device = parts().devices.unbind(current_user, device_id, json_body().get("reason"))
    return jsonify(device=devices.device_view(device))


@bp.post("/api/v1/devices/<int:device_id>/renew")
@login_required
def renew_device(device_id: int):
    device = parts().devices.renew(current_user, current_user.auth_session, device_id)
    return jsonify(device=devices.device_view(device))


@bp.get("/api/v1/devices/<int:device_id>/certificate")
@login_required
def device_certificate(device_id: int):
    filename, pem = devices.certificate_pem(current_user, device_id)
    return Response(
        pem, mimetype="application/x-pem-file", headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@phone_bp.get("/m/bind/<token>")
def phone_bind_page(token: str):
    try:
        devices.check_binding_link(token)
    except Refusal as refusal:
        return error_page(refusals.lookup(refusal).status, refusals.message(refusal))
    return render_template("phone_bind.html", token=token, on_a_computer=not _looks_like_a_phone())


def _looks_like_a_phone() -> bool:
    """Whether the browser says it is a phone's or a tablet's (the client hint, else the user agent). Only for
    a hint on the page: a computer with fingerprint unlock may bind itself."""
    if request.headers.get("Sec-CH-UA-Mobile") == "?1":
        return True
    agent = request.user_agent.string
    return any(word in agent for word in ("Mobi", "Android", "iPhone", "iPad"))


def _phone_limit() -> str:
    return current_app.config["PHONE_RATE_LIMIT"]


@phone_bp.post("/api/v1/m/bind/<token>/options")
@limiter.limit(_phone_limit)
def phone_bind_options(token: str):
    return jsonify(parts().devices.binding_options(token))


@phone_bp.post("/api/v1/m/bind/<token>/complete")
@limiter.limit(_phone_limit)
def phone_bind_complete(token: str):
    body = json_body()
    device = parts().devices.complete_binding(
        token, body.get("credential"), body.get("device_name"), user_agent=request.user_agent.string
    )
    return jsonify(device=devices.device_view(device)), 201
