"""The stylesheet's blocks close: one rule left open (a lost ``}``) makes browsers drop every rule after it,
and the pages after it in the file lose their layout without an error anywhere."""

import re
from pathlib import Path

STYLESHEET = Path(__file__).resolve().parents[2] / "app" / "static" / "css" / "app.css"


def _unclosed_rules(css: str) -> list[int]:
    """Lines where a rule opens inside another rule (the file uses no CSS nesting), and any rule still open
    at the end of the file."""
    css = re.sub(r"/\*.*?\*/", lambda m: re.sub(r"[^\n]", " ", m.group()), css, flags=re.S)
    stack: list[tuple[str, int]] = []  # ("rule" or "at", line it opened on)
    prelude_start = 0
    found = []
    for index, char in enumerate(css):
        if char == "{":
            prelude = css[prelude_start:index].strip()
            line = css.count("\n", 0, index) + 1
            if stack and stack[-1][0] == "rule":
                found.append(line)
            stack.append(("at" if prelude.startswith("@") else "rule", line))
            prelude_start = index + 1
        elif char == "}":
            if stack:
                stack.pop()
            prelude_start = index + 1
        elif char == ";":
            prelude_start = index + 1
    return found + [line for _, line in stack]


def test_every_rule_of_the_stylesheet_is_closed_before_the_next_begins():
    assert _unclosed_rules(STYLESHEET.read_text()) == []


def test_an_unclosed_rule_is_found():
    assert _unclosed_rules(".a {\n  color: red;\n.b {\n  color: blue;\n}\n") == [3, 1]
    assert _unclosed_rules("@media (max-width: 1px) {\n  .a { color: red; }\n}\n/* { */ .b { }\n") == []
