"""The floor plan holds: who may import whom, how large a module grows, what a module exports.

Read from the source, without importing it: the rules are about the text a newcomer reads.

- ``qihe`` is the kernel both sides share: it imports neither ``edge`` nor ``central``.
- ``edge`` (the gateway) and ``central`` (the server) never import each other.
- ``firmware_bridge`` (the serial protocol and the board emulator) stands alone.
- No product module grows past :data:`MAX_LINES`; test tools do not ship in the product.
- Every product module says what it exports (``__all__``), and something outside it uses each.
- MQTT clients and InfluxDB HTTP sessions are built in one place each.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("qihe", "qihe_cli", "devstack", "edge", "central", "firmware_bridge")
MAX_LINES = 600

#: Who may not import whom.
FORBIDDEN = {
    "qihe": {"edge", "central", "qihe_cli", "devstack", "tests", "bench"},
    "edge": {"central", "qihe_cli", "devstack", "tests", "bench"},
    "central": {"edge", "qihe_cli", "devstack", "tests", "bench"},
    "firmware_bridge": {"qihe", "edge", "central", "qihe_cli", "devstack", "tests", "bench"},
    "devstack": {"edge", "central", "qihe_cli", "tests", "bench"},
    "qihe_cli": {"tests"},
}
#: Test tools that must not be imported by the product.
TEST_TOOLS = {"pytest", "hypothesis", "playwright"}


@dataclass(frozen=True)
class Module:
    path: Path
    name: str
    tree: ast.Module
    lines: int

    @property
    def package(self) -> str:
        return self.name.split(".")[0]

    def imports(self) -> set[str]:
        found: set[str] = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module)
        return found

    def exports(self) -> list[str]:
        for node in self.tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            ):
                value = ast.literal_eval(node.value)
                return list(value)
        return []


@cache
def product_modules() -> tuple[Module, ...]:
    modules = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            relative = path.relative_to(ROOT).with_suffix("")
            parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
            text = path.read_text(encoding="utf-8")
            modules.append(Module(path, ".".join(parts), ast.parse(text), text.count("\n") + 1))
    return tuple(modules)


@cache
def all_sources() -> dict[Path, str]:
    """Every Python file of the repository: the product, its tests and its benchmarks."""
    sources = {}
    for folder in (*PRODUCT, "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            if "__pycache__" not in path.parts:
                sources[path] = path.read_text(encoding="utf-8")
    return sources


def ids(modules: tuple[Module, ...]) -> list[str]:
    return [m.name for m in modules]


@pytest.mark.parametrize("module", product_modules(), ids=ids(product_modules()))
def test_a_module_imports_only_what_its_place_allows(module: Module) -> None:
    forbidden = FORBIDDEN[module.package] | TEST_TOOLS
    wrong = sorted(name for name in module.imports() if name.split(".")[0] in forbidden)
    assert not wrong, f"{module.name} ({module.package}/) must not import {wrong}"


@pytest.mark.parametrize("module", product_modules(), ids=ids(product_modules()))
def test_no_module_grows_past_the_limit(module: Module) -> None:
    assert module.lines <= MAX_LINES, f"{module.path.relative_to(ROOT)}: {module.lines} lines"


@pytest.mark.parametrize(
    "module",
    [m for m in product_modules() if m.path.name != "__init__.py"],
    ids=ids(tuple(m for m in product_modules() if m.path.name != "__init__.py")),
)
def test_every_module_says_what_it_exports_and_each_export_is_used_elsewhere(
    module: Module,
) -> None:
    exports = module.exports()
    assert exports or module.tree.body == [], f"{module.name} has no __all__"
    # A package's __init__ that re-exports a name is a door, not a user.
    doors = {
        ROOT / Path(*module.name.split(".")[:depth]) / "__init__.py"
        for depth in range(1, module.name.count(".") + 1)
    }
    others = [
        text for path, text in all_sources().items() if path != module.path and path not in doors
    ]
    unused = [
        name
        for name in exports
        if not any(re.search(rf"\b{re.escape(name)}\b", text) for text in others)
    ]
    assert not unused, f"{module.name} exports {unused}, which nothing outside it uses"


#: Where each kind of client may be constructed (the one construction site of each).
CONSTRUCTION_SITES = {
    "an MQTT client": (
        re.compile(r"\b(mqtt\.Client|aiomqtt\.Client|PubackClient|paho\.mqtt\.client\.Client)\("),
        {"qihe/mqtt/clients.py"},
    ),
    "an InfluxDB HTTP session": (
        re.compile(r"\bhttpx\.(Async)?Client\(|\bInfluxDBClient\("),
        {"central/influx/session.py", "central/alerts/routes/base.py"},
    ),
}


@pytest.mark.parametrize("what", sorted(CONSTRUCTION_SITES))
def test_each_kind_of_client_is_built_in_one_place(what: str) -> None:
    pattern, allowed = CONSTRUCTION_SITES[what]
    sites = {
        str(m.path.relative_to(ROOT))
        for m in product_modules()
        if pattern.search(m.path.read_text(encoding="utf-8"))
    }
    assert sites <= allowed, f"{what} is built in {sorted(sites - allowed)} too"


def test_every_qihe_command_starts_without_the_heavy_libraries_of_a_few() -> None:
    """Every ``qihe`` command builds the whole parser: a gateway on a Pi (``qihe gateway run``)
    must not load Pillow, the QR coder, prometheus_client or the web stack to do so (the
    gateway's memory target, ``docs/benchmarks.md``)."""
    heavy = ("PIL", "segno", "prometheus_client", "httpx", "fastapi", "uvicorn", "starlette")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys\nfrom qihe_cli.main import build_parser\nbuild_parser()\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert not set(json.loads(done.stdout)) & set(heavy)
