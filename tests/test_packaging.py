"""The installable package: a wheel built offline from the tracked files, as from a fresh clone, must carry
everything the server reads at run time and require what the lock pins; unpacked outside the source tree
it migrates its database and serves, keeping its instance folder in the current directory."""

from __future__ import annotations

import gettext
import os
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import config
from tests.support import missing

ROOT = Path(__file__).resolve().parents[1]
PACKAGED = ("app/", "iccard/", "twfido/", "webauthn/", "migrations/")


def _tracked() -> list[str]:
    """The files a fresh clone has (the tracked ones, and new ones not yet committed but not ignored)."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT, capture_output=True, check=True, text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        missing(f"git, to list the tracked files: {exc}")
    return sorted(name for name in listing.split("\0") if name and (ROOT / name).is_file())


def _pins(name: str) -> dict[str, Version]:
    """``name==version`` lines of a lock file, by canonical name."""
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9._-]+)(\[[^]]*\])?==([^ ;\\]+)", line):
            pins[canonicalize_name(match[1])] = Version(match[3])
    return pins


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    try:
        import setuptools
    except ImportError:
        missing("setuptools (requirements-test.txt): make setup-test")
    if Version(setuptools.__version__) < Version("77"):
        missing(f"setuptools>=77 (requirements-test.txt pins it), not {setuptools.__version__}: make setup-test")
    source = tmp_path_factory.mktemp("clone")
    for name in _tracked():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "--wheel-dir", str(out), str(source)],
        capture_output=True, text=True, check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (built,) = out.glob("mocert-*.whl")
    return built


def _dist_info(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        (path,) = [n for n in archive.namelist() if re.fullmatch(rf"mocert-[^/]+\.dist-info/{name}", n)]
        return archive.read(path).decode()


def _requirements(wheel: Path) -> list[Requirement]:
    return [Requirement(value) for value in Parser().parsestr(_dist_info(wheel, "METADATA")).get_all("Requires-Dist")]


def test_the_wheel_requires_what_the_lock_pins_at_the_top(wheel):
    runtime = [r for r in _requirements(wheel) if r.marker is None]
    pins = _pins("requirements.txt")
    for requirement in runtime:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not pinned in requirements.txt (make lock)"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"the lock pins {name}=={pins[name]}"
    # pip-compile marks what the project asks for itself: the lock's top level is the wheel's requirements.
    top_level = set()
    for block in re.split(r"\n(?=\S)", (ROOT / "requirements.txt").read_text()):
        if "mocert (pyproject.toml)" in block:
            top_level.add(canonicalize_name(re.match(r"[A-Za-z0-9._-]+", block)[0]))
    assert top_level == {canonicalize_name(r.name) for r in runtime}


def test_the_agent_extra_is_the_agent_lock(wheel):
    agent = [r for r in _requirements(wheel) if r.marker is not None and r.marker.evaluate({"extra": "agent"})]
    assert {canonicalize_name(r.name) for r in agent} == set(_pins("requirements-agent.txt")) == {"pyscard", "python-pkcs11"}
    pins = _pins("requirements-agent.txt")
    for requirement in agent:
        assert requirement.specifier.contains(pins[canonicalize_name(requirement.name)])


@pytest.mark.parametrize("lock", ["requirements.txt", "requirements-test.txt", "requirements-agent.txt"])
def test_every_pin_carries_its_hashes(lock):
    # make setup installs with --require-hashes: one pin without a hash and nothing installs.
    blocks = [b for b in re.split(r"\n(?=\S)", (ROOT / lock).read_text()) if "==" in b.split("\n")[0]]
    assert blocks
    for block in blocks:
        assert "--hash=sha256:" in block, f"{lock}: {block.splitlines()[0]} has no hash"


def test_the_wheel_holds_every_file_the_server_reads(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    tracked = _tracked()
    expected = {n for n in tracked if n.startswith(PACKAGED)} | {"config.py", "wsgi.py"}
    expected |= {n.removesuffix(".po") + ".mo" for n in tracked if n.endswith("/LC_MESSAGES/messages.po")}
    assert expected - names == set()
    for sample in ("app/templates/base.html", "app/templates/admin/layout.html", "app/static/js/api.js",
                   "app/translations/zh_Hant_TW/LC_MESSAGES/messages.mo", "iccard/trust/GRCA-G3.cer",
                   "iccard/trust/MOICA-G3.cer", "iccard/agent/assets/popup.html", "migrations/alembic.ini",
                   "migrations/env.py", "migrations/script.py.mako", "migrations/versions/0001_initial.py"):
        assert sample in names
    assert not [n for n in names if n.startswith(("tests/", "instance/", "examples/", "fuzz/")) or ".pyc" in n]


def test_the_catalog_is_compiled_into_the_wheel(wheel, tmp_path):
    with zipfile.ZipFile(wheel) as archive:
        mo = tmp_path / "messages.mo"
        mo.write_bytes(archive.read("app/translations/zh_Hant_TW/LC_MESSAGES/messages.mo"))
    with mo.open("rb") as handle:
        assert gettext.GNUTranslations(handle).gettext("Please log in first.") == "請先登入。"


def test_the_mocert_command_is_the_apps_flask_cli(wheel):
    entry_points = _dist_info(wheel, "entry_points.txt")
    assert re.search(r"^\[console_scripts\]\nmocert = app\.__main__:main$", entry_points, re.MULTILINE)
    from app.__main__ import main

    assert callable(main)


def test_unpacked_outside_the_tree_it_migrates_and_serves_with_instance_in_the_current_directory(wheel, tmp_path):
    # A pure wheel unpacked is what pip puts in site-packages; the source tree stays off the path.
    site = tmp_path / "site-packages"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOCERT_", "FLASK_", "PYTHON"))}
    env |= {"PYTHONPATH": str(site), "MOCERT_ENV": "development", "MOCERT_PUBLIC_URL": "http://localhost:5999"}

    def run(*args: str) -> str:
        command = [sys.executable, *args]
        done = subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    assert "Running upgrade 0009 -> 0010" in run("-m", "app", "db", "upgrade")
    served = run("-c", "import app, config, wsgi; c = wsgi.app.test_client();"
                       "print('served:', app.__file__, config.BASE_DIR, c.get('/healthz').status_code,"
                       " c.get('/login').status_code, '登入' in c.get('/login').text)")
    line = next(line for line in served.splitlines() if line.startswith("served: "))  # the log may speak too
    assert line.split()[1:] == [str(site / "app" / "__init__.py"), str(site), "200", "200", "True"]
    assert (elsewhere / "instance" / "mocert.db").is_file() and (elsewhere / "instance" / "secret_key").is_file()
    assert not (site / "instance").exists()


def test_the_instance_folder_is_the_source_trees_own_or_the_current_directorys(tmp_path, monkeypatch):
    assert config.default_instance_dir() == ROOT / "instance"  # make run, the agent's defaults
    monkeypatch.setattr(config, "BASE_DIR", tmp_path / "site-packages")  # no pyproject.toml beside config.py
    monkeypatch.chdir(tmp_path)
    assert config.default_instance_dir() == tmp_path / "instance"
    monkeypatch.setenv("MOCERT_INSTANCE_DIR", str(tmp_path / "srv"))
    assert config.TestingConfig().INSTANCE_DIR == tmp_path / "srv"
