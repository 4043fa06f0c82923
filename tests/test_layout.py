"""The shape the design asks for: domain packages free of Flask; no package shadowing pyscard."""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(package: str, *, leaving_out: tuple[str, ...] = ()) -> set[str]:
    """The top-level modules the files of ``package`` import, its subpackages ``leaving_out`` left out."""
    modules = set()
    for path in (ROOT / package).rglob("*.py"):
        if any(path.is_relative_to(ROOT / package / inner) for inner in leaving_out):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules


@pytest.mark.parametrize("package", ["iccard", "twfido", "webauthn"])
def test_domain_packages_import_nothing_from_flask_or_the_app(package):
    imported = _imports(package)
    assert not {m for m in imported if m.startswith("flask")}
    assert "app" not in imported and "werkzeug" not in imported


# Which of our other domain packages each may import. The software phone (webauthn/phone) answers agencies'
# requests: it checks their tickets and rebuilds what it is asked to sign with twfido, as an agency does.
# twfido is what agencies read and rerun, so it stands alone; the server's WebAuthn needs nothing of it.
DOMAIN_IMPORTS = {"iccard": set(), "twfido": set(), "webauthn": set(), "webauthn/phone": {"twfido"}}


@pytest.mark.parametrize("package", sorted(DOMAIN_IMPORTS))
def test_domain_packages_import_only_the_domain_packages_they_build_on(package):
    inner = tuple(name.removeprefix(f"{package}/") for name in DOMAIN_IMPORTS if name.startswith(f"{package}/"))
    ours = {name.split("/")[0] for name in DOMAIN_IMPORTS} - {package.split("/")[0]}
    assert _imports(package, leaving_out=inner) & ours <= DOMAIN_IMPORTS[package]


def test_twfido_needs_only_cryptography_and_the_standard_library():
    """Agencies read and rerun it (the verifier of a phone's signature above all): nothing else to install."""
    assert _imports("twfido") - set(sys.stdlib_module_names) == {"cryptography"}


def test_no_local_package_shadows_pyscards_smartcard():
    assert not (ROOT / "smartcard").exists()


HTTP_MODULES = ("flask", "flask_babel", "flask_login", "flask_wtf", "werkzeug")
REQUEST_GLOBALS = {"request", "session", "current_app", "g", "current_user"}


def _relative_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            names.add("." * node.level + (node.module or ""))
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "app/services").glob("*.py")), ids=lambda p: p.name)
def test_services_speak_the_domain_not_http(path):
    """No Flask, no translated text, no HTTP errors, no request globals: a service can be called from a
    command or a test as well as a view, and its refusals are answered by the one table in app/refusals.py."""
    tree = ast.parse(path.read_text(), str(path))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & set(HTTP_MODULES)
    assert not {m for m in _relative_imports(path) if m.rstrip(".").endswith("errors") and m.startswith("..")}
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert not names & REQUEST_GLOBALS  # a bare name: db.session, an attribute, is SQLAlchemy's
    assert "ApiError" not in names
