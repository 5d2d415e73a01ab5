"""The dependency direction of DESIGN §7, checked on the source itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "mailblast"
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def imports_of(path: Path) -> set[str]:
    """Every module a file imports (absolute names)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def files(layer: str) -> list[Path]:
    """The Python files of one layer."""
    return sorted((SRC / layer).rglob("*.py"))


@pytest.mark.parametrize("path", files("domain"), ids=lambda p: p.name)
def test_domain_imports_only_stdlib_attrs_and_the_address_validator(path: Path) -> None:
    """The domain is pure: no I/O libraries, no other mailblast layer."""
    for name in imports_of(path):
        top = name.split(".")[0]
        assert (
            top in STDLIB
            or top in {"attrs", "email_validator"}
            or name.startswith("mailblast.domain")
        ), f"{path.name} imports {name}"


@pytest.mark.parametrize("path", files("ports"), ids=lambda p: p.name)
def test_ports_import_only_the_domain(path: Path) -> None:
    """Ports name what the core needs; they know nothing of adapters or services."""
    for name in imports_of(path):
        if name.startswith("mailblast"):
            assert name.startswith(("mailblast.domain", "mailblast.ports")), name


@pytest.mark.parametrize("path", files("services"), ids=lambda p: p.name)
def test_services_touch_only_domain_and_ports(path: Path) -> None:
    """Use cases never reach an adapter directly."""
    for name in imports_of(path):
        if name.startswith("mailblast"):
            assert name.startswith(("mailblast.domain", "mailblast.ports", "mailblast.services")), (
                f"{path.name} imports {name}"
            )
        assert name.split(".")[0] not in {"asyncpg", "boto3", "aioboto3", "botocore"}


@pytest.mark.parametrize("path", files("adapters"), ids=lambda p: str(p.relative_to(SRC)))
def test_adapters_do_not_import_each_other(path: Path) -> None:
    """An adapter depends on ports and domain, never on another adapter package."""
    own = path.relative_to(SRC / "adapters").parts[0]
    for name in imports_of(path):
        if name.startswith("mailblast.adapters."):
            assert name.split(".")[2] == own.removesuffix(".py"), f"{path} imports {name}"
        if name.startswith("mailblast"):
            assert not name.startswith("mailblast.entrypoints"), name
