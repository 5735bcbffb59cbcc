"""The import rules between the runner's packages, read from the source (ast), so that the layout
keeps showing the architecture: each rule fails with the file and the import that breaks it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
RUNNER = REPOSITORY / "runner" / "docker_runner"
CLIENT = REPOSITORY / "client" / "docker_runner_client"
PACKAGES = ("protocol", "auth", "engine", "containers", "policy", "exec", "workloads", "jobs", "cluster", "http")
# the composition: it wires every package together, and may import them all
COMPOSITION = ("app", "server", "__main__", "runtime")


@dataclass(frozen=True)
class Import:
    source: Path  # the importing file
    module: str  # what it imports, absolute and dotted ("docker_runner.engine.core", "litestar", ...)

    @property
    def where(self) -> str:
        return str(self.source.relative_to(REPOSITORY))


def _module_of(path: Path, root: Path, top: str) -> list[str]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return [top, *parts]


def imports(root: Path, top: str) -> Iterator[Import]:
    """Every import of every file below ``root``, relative ones made absolute."""
    for path in sorted(root.rglob("*.py")):
        dotted = _module_of(path, root, top)
        package = dotted[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(path, alias.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    base = node.module or ""
                else:
                    base = ".".join(
                        [*package[: len(package) - (node.level - 1)], *([node.module] if node.module else [])]
                    )
                yield Import(path, base)
                for alias in node.names:  # `from . import module` imports that module
                    candidate = f"{base}.{alias.name}"
                    if _is_module(candidate):
                        yield Import(path, candidate)


def _is_module(dotted: str) -> bool:
    parts = dotted.split(".")
    if parts[0] != "docker_runner":
        return False
    path = RUNNER.joinpath(*parts[1:])
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _unit(module: str) -> str | None:
    """The runner's package (or top-level module) an import lands in; None outside the runner."""
    parts = module.split(".")
    if parts[0] != "docker_runner" or len(parts) == 1:
        return None
    return parts[1]


def _unit_of(path: Path) -> str:
    relative = path.relative_to(RUNNER).parts
    return relative[0].removesuffix(".py")


RUNNER_IMPORTS = list(imports(RUNNER, "docker_runner"))


def _offenders(unit_allowed: dict[str, set[str]], foreign: tuple[str, ...]) -> list[str]:
    return [
        f"{imp.where} imports {imp.module}"
        for imp in RUNNER_IMPORTS
        if imp.module.split(".")[0] in foreign and _unit_of(imp.source) not in unit_allowed
    ]


def test_only_the_http_layer_and_the_composition_import_litestar() -> None:
    """Litestar is the web framework's business: http/ and app.py; everything else runs without it."""
    allowed = {"http": set(), "app": set()}
    assert _offenders(allowed, ("litestar",)) == []


def test_only_the_engine_package_imports_docker_py() -> None:
    """docker-py (and the HTTP stack under it) is imported by engine/ alone."""
    assert _offenders({"engine": set()}, ("docker", "requests", "urllib3")) == []


def test_only_metrics_and_http_import_prometheus() -> None:
    """Metrics are defined in metrics.py; the HTTP layer exposes them."""
    assert _offenders({"metrics": set(), "http": set()}, ("prometheus_client",)) == []


def test_protocol_and_errors_import_nothing_of_the_project() -> None:
    """protocol/ is pure bytes and frames, errors.py the kinds: they import nothing of docker_runner."""
    offenders = [
        f"{imp.where} imports {imp.module}"
        for imp in RUNNER_IMPORTS
        if _unit_of(imp.source) in ("protocol", "errors")
        and _unit(imp.module) is not None
        and _unit(imp.module) != _unit_of(imp.source)
    ]
    assert offenders == []


# What each package may import of the runner (besides itself); the top-level modules that every
# package may use are configuration and the error kinds.
SHARED = {"errors", "settings", "units", "metrics", "protocol"}
MAY_IMPORT: dict[str, set[str]] = {
    "__init__": set(),
    "protocol": set(),
    "errors": set(),
    "units": set(),
    "settings": {"units"},
    "metrics": {"__init__"},
    "envfile": set(),
    "log_format": set(),
    "policy": {"errors"},
    "auth": {"errors", "protocol"},
    "engine": {"errors", "settings", "protocol"},
    "containers": SHARED | {"engine", "policy"},
    "exec": SHARED | {"engine", "containers"},
    "workloads": SHARED | {"engine", "containers", "policy", "exec"},
    "jobs": SHARED | {"engine", "containers", "policy", "exec"},
    "cluster": SHARED | {"engine", "containers", "policy", "auth"},
    "http": SHARED
    | {"auth", "engine", "containers", "policy", "exec", "workloads", "jobs", "cluster", "runtime", "__init__"},
}


@pytest.mark.parametrize("unit", sorted(MAY_IMPORT))
def test_each_package_imports_only_what_its_docstring_allows(unit: str) -> None:
    """auth/ never reaches the engine, the engine never reaches the capabilities above it, ..."""
    allowed = MAY_IMPORT[unit] | {unit}
    offenders = [
        f"{imp.where} imports {imp.module}"
        for imp in RUNNER_IMPORTS
        if _unit_of(imp.source) == unit and (target := _unit(imp.module)) is not None and target not in allowed
    ]
    assert offenders == []


def test_every_unit_of_the_runner_has_its_rule() -> None:
    """A new package or top-level module needs its line in MAY_IMPORT (or is part of the composition)."""
    units = {_unit_of(path) for path in RUNNER.rglob("*.py")}
    assert units - set(MAY_IMPORT) - set(COMPOSITION) == set()


def test_no_cycles_between_packages() -> None:
    """The packages (and top-level modules) form a graph without cycles."""
    graph: dict[str, set[str]] = {}
    for imp in RUNNER_IMPORTS:
        source, target = _unit_of(imp.source), _unit(imp.module)
        if target is not None and target != source and target != "__init__":
            graph.setdefault(source, set()).add(target)
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        if node in done:
            return
        assert node not in visiting, "import cycle: " + " -> ".join([*visiting[visiting.index(node) :], node])
        visiting.append(node)
        for target in sorted(graph.get(node, ())):
            visit(target)
        visiting.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)


def test_the_client_never_imports_the_runner() -> None:
    """The client is a distribution of its own: it must work without the runner installed."""
    offenders = [
        f"{imp.where} imports {imp.module}"
        for imp in imports(CLIENT, "docker_runner_client")
        if imp.module.split(".")[0] in ("docker_runner", "litestar", "docker")
    ]
    assert offenders == []


def test_every_package_says_what_it_owns_and_may_import() -> None:
    """Each package's docstring names what it owns and what it may import."""
    for package in PACKAGES:
        docstring = ast.get_docstring(ast.parse((RUNNER / package / "__init__.py").read_text())) or ""
        assert "May import" in docstring and len(docstring.split()) > 15, package
