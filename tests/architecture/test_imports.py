"""Import direction, checked by machine (STYLE.md): domains never import the wiring, routes and
jobs sit on top, contracts and the edge stay free of the service."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WIRING = {"hub.app", "hub.worker", "hub.cli"}
DOMAINS = (
    "ingest",
    "policy",
    "delivery",
    "feeds",
    "identity",
    "audit",
    "retention",
    "incidents",
    "observability",
    "media",
)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def starts_with_any(name: str, prefixes: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("path", [p for d in DOMAINS for p in modules(f"hub/{d}")], ids=str)
def test_domains_do_not_import_the_wiring(path: Path) -> None:
    bad = {name for name in imports_of(path) if starts_with_any(name, WIRING)}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", [p for d in DOMAINS for p in modules(f"hub/{d}")], ids=str)
def test_lower_layers_do_not_import_routes_or_jobs(path: Path) -> None:
    if path.stem in {"routes", "jobs", "__init__"}:
        return
    bad = {
        n
        for n in imports_of(path)
        if n.startswith("hub.") and n.rsplit(".", 1)[-1] in {"routes", "jobs"}
    }
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", modules("hub/kit") + modules("hub/contracts"), ids=str)
def test_kit_and_contracts_import_no_domain(path: Path) -> None:
    domains = {f"hub.{d}" for d in DOMAINS} | WIRING | {"hub.runtime", "hub.tables"}
    bad = {n for n in imports_of(path) if starts_with_any(n, domains)}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", modules("hub/contracts") + modules("edge"), ids=str)
def test_contracts_and_edge_import_nothing_of_the_service(path: Path) -> None:
    bad = {n for n in imports_of(path) if n.startswith("hub") and not n.startswith("hub.contracts")}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
