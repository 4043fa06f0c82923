"""The shape the design asks for: domain packages free of Flask; no package shadowing pyscard."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(package: str) -> set[str]:
    modules = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules


@pytest.mark.parametrize("package", ["iccard", "webauthn"])
def test_domain_packages_import_nothing_from_flask_or_the_app(package):
    imported = _imports(package)
    assert not {m for m in imported if m.startswith("flask")}
    assert "app" not in imported and "werkzeug" not in imported


def test_no_local_package_shadows_pyscards_smartcard():
    assert not (ROOT / "smartcard").exists()
