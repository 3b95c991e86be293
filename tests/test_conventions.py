"""House rules a test can check: the domain knows nothing of the web or of Stripe."""

import ast
from pathlib import Path

DOMAIN = Path(__file__).resolve().parent.parent / "storefront" / "domain"
FORBIDDEN = {"flask", "stripe", "werkzeug", "flask_sqlalchemy", "flask_login", "flask_wtf"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_domain_modules_import_neither_flask_nor_stripe():
    offenders = {
        path.name: sorted(imported_roots(path) & FORBIDDEN)
        for path in DOMAIN.glob("*.py")
        if imported_roots(path) & FORBIDDEN
    }
    assert offenders == {}
