"""The build step pyproject.toml cannot say: the zh-TW catalog compiled into the wheel.

The .mo files are build output (not tracked, ``make translations`` makes them for the source tree), so a
wheel built from a fresh clone would otherwise serve every page in English.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CATALOGS = "app/translations/*/LC_MESSAGES/messages.po"


class BuildWithCatalogs(build_py):
    def run(self) -> None:
        super().run()
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        # An editable install serves the source tree's own translations folder.
        root = Path() if self.editable_mode else Path(self.build_lib)
        for po in sorted(Path().glob(CATALOGS)):
            with po.open("rb") as source:
                catalog = read_po(source, locale=po.parts[-3])
            mo = root / po.with_suffix(".mo")
            mo.parent.mkdir(parents=True, exist_ok=True)
            with mo.open("wb") as target:
                write_mo(target, catalog)  # fuzzy entries left out, as pybabel compile does


setup(cmdclass={"build_py": BuildWithCatalogs})
