"""The package's import direction (issue 13): web -> orchestrator -> its parts -> runtime ->
docker_backend/chp/metrics -> pure modules. An import running back up (a part importing the
orchestrator, the runtime importing a part) fails here, and so does a new module nobody placed."""

from __future__ import annotations

import ast
from pathlib import Path

import tmpnb

# lower number = lower layer; a module may import only modules of a lower layer (pure ones: their own)
LAYERS = {
    "__init__": 0,
    "bounded": 0,
    "config": 0,
    "cull": 0,
    "docker_spec": 0,
    "ids": 0,
    "options": 0,
    "placement": 0,
    "pool": 0,
    "ratelimit": 0,
    "recent": 0,
    "reconcile": 0,
    "clients": 1,
    "chp": 1,
    "docker_backend": 1,
    "metrics": 1,
    "runtime": 2,
    "handout": 3,
    "lifecycle": 4,
    "events": 5,
    "reconciler": 5,
    "orchestrator": 6,
    "web": 7,
    "app": 8,
    "__main__": 9,
}
PACKAGE = Path(tmpnb.__file__).parent


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tmpnb":
            rest = node.module.split(".")[1:]
            found.add(rest[0] if rest else "__init__")
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("tmpnb.")}
    return found


def test_every_module_has_a_layer() -> None:
    assert sorted(p.stem for p in PACKAGE.glob("*.py")) == sorted(LAYERS)


def test_no_import_runs_back_up() -> None:
    upward = [
        f"{path.stem} ({LAYERS[path.stem]}) imports {name} ({LAYERS[name]})"
        for path in sorted(PACKAGE.glob("*.py"))
        for name in sorted(_imports(path))
        if LAYERS[name] > LAYERS[path.stem] or (LAYERS[name] == LAYERS[path.stem] > 0)
    ]
    assert upward == []
