"""`python -m invoicing.messages`: every msgid the invoice code and template use, as a `.pot`
on stdout (`invoicing/locale/invoice.pot`), so a new word cannot miss the catalogs: the tests
check that each language's `.po` translates every one of them."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SOURCES = ("document.py", "einvoice.py", "pdf.py")
TEMPLATE = ROOT.parent / "templates" / "invoice.html.j2"
CALLS = {"of", "gettext", "g"}  # Text.of("..."), words.gettext("..."), g("...")
TABLES = {"METER_NAMES", "TIER_NAMES", "UNIT_NAMES", "_METHOD_NAMES", "ECB_SOURCES"}


def msgids() -> list[str]:
    """The msgids, in a stable order."""
    found: dict[str, None] = {}
    for name in SOURCES:
        tree = ast.parse((ROOT / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                first = node.args[0]
                if called in CALLS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found[first.value] = None
                if called in CALLS and isinstance(first, ast.IfExp):
                    for branch in (first.body, first.orelse):
                        if isinstance(branch, ast.Constant) and isinstance(branch.value, str):
                            found[branch.value] = None
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
                targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if TABLES.intersection(targets):
                    for value in node.value.values:
                        if isinstance(value, ast.Constant) and isinstance(value.value, str):
                            found[value.value] = None
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if any(t.startswith("MSG_") for t in targets) and isinstance(node.value.value, str):
                    found[node.value.value] = None
    for match in re.finditer(r'g\("([^"]+)"\)', TEMPLATE.read_text(encoding="utf-8")):
        found[match.group(1)] = None
    return list(found)


def pot() -> str:
    entries = [f"msgid {_quoted(m)}\nmsgstr \"\"\n" for m in msgids()]
    header = 'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n'
    return "\n".join([header, *entries])


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    sys.stdout.write(pot())
