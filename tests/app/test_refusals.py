"""The refusal table: every refusal the code raises has its answer, and one answer serves JSON and pages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app import refusals
from app.refusals import ANSWERS, Answer
from app.services.refusals import Refusal

ROOT = Path(__file__).resolve().parents[2]


def _literal_refusals():
    """(path, line, code, case) of every ``Refusal("code", case="…")`` whose code is written out."""
    for path in sorted((ROOT / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Refusal" and node.args):
                continue
            code = node.args[0]
            if not (isinstance(code, ast.Constant) and isinstance(code.value, str)):
                continue
            case = next((k.value for k in node.keywords if k.arg == "case"), None)
            if case is None or isinstance(case, ast.Constant):
                yield f"{path.relative_to(ROOT)}:{node.lineno}", code.value, getattr(case, "value", None)
            else:  # a case chosen at run time: some answer of the code, at least
                yield f"{path.relative_to(ROOT)}:{node.lineno}", code.value, ...


def test_every_refusal_the_code_raises_has_an_answer():
    unanswered = []
    for where, code, case in _literal_refusals():
        if case is ...:
            if not any(key == code or (isinstance(key, tuple) and key[0] == code) for key in ANSWERS):
                unanswered.append(f"{where} {code} case=<any>")
            continue
        try:
            refusals.lookup(Refusal(code, case=case))
        except KeyError:
            unanswered.append(f"{where} {code} case={case}")
    assert unanswered == []


def test_every_answer_is_an_error_status_with_a_message():
    for key, answer in ANSWERS.items():
        assert isinstance(answer, Answer), key
        assert 400 <= answer.status < 600, key
        assert answer.message.strip(), key


def test_a_code_of_a_known_family_takes_the_familys_answer_and_an_unknown_one_is_a_bug(monkeypatch):
    monkeypatch.setitem(ANSWERS, (None, "example"), Answer(401, "It failed."))
    assert refusals.lookup(Refusal("something_new", case="example")).status == 401
    with pytest.raises(KeyError):
        refusals.lookup(Refusal("something_new"))


@pytest.fixture
def refusing_app(app):
    answer = Answer(409, "You already have %(limit)d devices. Unbind one first.", shown=("limit",))

    def refuse():
        raise Refusal("device_limit_example", limit=3, hidden="not in the body")

    app.add_url_rule("/api/v1/example-refusal", "example_api", refuse)
    app.add_url_rule("/example-refusal", "example_page", refuse)
    ANSWERS["device_limit_example"] = answer
    yield app
    del ANSWERS["device_limit_example"]


def test_an_api_refusal_is_its_status_code_message_and_shown_fields_only(refusing_app):
    response = refusing_app.test_client().get("/api/v1/example-refusal", headers={"Accept-Language": "en"})
    assert response.status_code == 409
    assert response.get_json() == {
        "error": "device_limit_example",
        "message": "You already have 3 devices. Unbind one first.",
        "limit": 3,
    }


def test_a_refusal_speaks_traditional_chinese_first(refusing_app):
    response = refusing_app.test_client().get("/api/v1/example-refusal")
    message = response.get_json()["message"]
    assert "3" in message and "You already" not in message


def test_a_page_that_refuses_shows_the_error_page_with_the_message(refusing_app):
    response = refusing_app.test_client().get("/example-refusal", headers={"Accept-Language": "en"})
    assert response.status_code == 409
    assert response.mimetype == "text/html"
    assert "You already have 3 devices. Unbind one first." in response.get_data(as_text=True)
