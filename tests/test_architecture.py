"""The house rules that keep the code easy to change (STYLE.md), checked on the source itself:
one direction between layers and no import cycle (imports inside functions counted), no module
over about 600 lines, and no write to the database outside the services."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("provisions", "partnership")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = modules()


def imports_of(name: str) -> set[str]:
    """The project modules a module imports, anywhere in it (inside functions too)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                kept = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*kept, base]).strip(".")
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names
            ]
        else:
            continue
        found.update(target for target in targets if target in MODULES and target != name)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def test_no_import_cycle_even_counting_imports_inside_functions() -> None:
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(GRAPH[name]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert cycles == []


# Who may not import whom: the direction of STYLE.md (tasks import services, never the reverse;
# rules and models know nothing of the interfaces; services know nothing of reports or pages).
FORBIDDEN = {
    "provisions.models": ("provisions.",),
    "provisions.rules": (
        "provisions.services",
        "provisions.views",
        "provisions.api",
        "provisions.admin",
        "provisions.reports",
        "provisions.tasks",
        "provisions.permissions",
    ),
    "provisions.services": (
        "provisions.tasks",
        "provisions.views",
        "provisions.api",
        "provisions.admin",
        "provisions.reports",
    ),
    "provisions.reports": ("provisions.views", "provisions.api", "provisions.admin", "provisions.tasks"),
    "provisions.views": ("provisions.api", "provisions.admin"),
    "provisions.api": ("provisions.views", "provisions.admin"),
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_in_one_direction(layer: str) -> None:
    wrong = {
        (name, target)
        for name, targets in GRAPH.items()
        if name == layer or name.startswith(f"{layer}.")
        for target in targets
        if target.startswith(FORBIDDEN[layer]) and not target.startswith(f"{layer}.") and target != layer
    }
    if layer == "provisions.models":  # its own submodules only
        wrong = {(name, target) for name, target in wrong if not target.startswith("provisions.models")}
    assert wrong == set()


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_passes_600_lines(name: str) -> None:
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= 600, f"{name}: {lines} lines; split it by sub-domain"


WRITES = re.compile(
    r"\.(save|delete|update|bulk_create|bulk_update|update_or_create|get_or_create)\(|\.objects\.create\("
)
# Writes outside provisions/services, each with why it is not one.
DOCUMENTED_EXCEPTIONS = {
    # The admin asks a formset for its validated rows; commit=False writes nothing.
    ("provisions/admin/base.py", "formset.save(commit=False)"),
    ("provisions/admin/provisions.py", "formset.save(commit=False)"),
    # A status change refuses to be saved twice (immutability), then saves as Django does.
    ("provisions/models/provisions.py", "super().save(*args, **kwargs)"),
    # A set of references and a dict of values, not tables.
    ("provisions/redaction.py", "named.update("),
    ("provisions/models/valid_time.py", "values.update(change.sets())"),
    # The role groups are made after every migrate (provisions.roles), like Django's permissions.
    ("provisions/roles.py", "group_model.objects.get_or_create("),
}


def test_every_write_goes_through_a_service() -> None:
    found = set()
    for path in MODULES.values():
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("provisions/services/"):
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if WRITES.search(line):
                documented = [
                    snippet for file, snippet in DOCUMENTED_EXCEPTIONS if file == relative and snippet in line
                ]
                found.add((relative, line.strip()) if not documented else None)
    assert found - {None} == set()
