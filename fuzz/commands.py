"""Several ``flask`` commands in one process, one Python start-up for all: ``python -m fuzz.commands
'["db", "upgrade"]' '["clients", "list"]'`` prints a JSON list of their outputs (``["routes"]`` gives the
url_map's routes). Exits 1 at the first command that fails, printing it and its output."""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from wsgi import app

    from .cases import routes_of

    runner = app.test_cli_runner()
    outputs = []
    for args in map(json.loads, argv):
        if args == ["routes"]:
            outputs.append([[r.rule, r.method, r.endpoint] for r in routes_of(app)])
            continue
        result = runner.invoke(args=args)
        if result.exit_code != 0:
            print(json.dumps({"failed": args, "output": result.output + repr(result.exception)}))
            return 1
        outputs.append(result.output)
    print(json.dumps(outputs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
