"""``mocert``: the Flask command line of the server, for an installed package (``pip install .``).

``mocert run``, ``mocert db upgrade``, ``mocert pki init-demo``, ``mocert clients add`` … are
``flask --app wsgi …`` without needing the source tree as the current directory. Also ``python -m app``.
"""

from __future__ import annotations

from flask.cli import FlaskGroup


def _create_app():
    from . import create_app

    return create_app()


def main(argv: list[str] | None = None) -> None:
    cli = FlaskGroup(
        name="mocert",
        create_app=_create_app,
        help="The MoCert server's commands (flask --app wsgi … from a source tree).",
    )
    cli.main(args=argv, prog_name="mocert")


if __name__ == "__main__":
    main()
