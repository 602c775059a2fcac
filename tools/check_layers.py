#!/usr/bin/env python3
"""Fails when the crate graph or a crate's module graph points the wrong way.

1. Crates stand on floors (ARCHITECTURE.md draws them); a crate may use only crates on lower
   floors, read from `cargo metadata` (normal, build and dev dependencies alike).
2. Within a crate, the modules' `crate::` references form no cycle, and no module is called
   `internal` (plumbing lent to sibling crates is either documented API or moved down).

Usage: tools/check_layers.py   (from the workspace root; `just ci` runs it)
"""

import json
import re
import subprocess
import sys
from pathlib import Path

FLOORS = {
    "imgclf-dataset": 0,
    "imgclf-testkit": 0,  # dev-only: uses no imgclf crate, so any crate above the dataset may test with it
    "imgclf-runtime": 1,
    "imgclf-kernels": 1,
    "imgclf-augment": 1,
    "imgclf-cam": 1,
    "imgclf-features": 2,
    "imgclf-zoo": 2,
    "imgclf-heads": 3,
    "imgclf-nets": 4,
    "imgclf-report": 5,
    "imgclf": 6,
    "imgclf-python": 6,  # the wheel: beside the CLI, on the same libraries
}


def crate_errors(metadata):
    errors = []
    members = {p["name"]: p for p in metadata["packages"] if p["id"] in metadata["workspace_members"]}
    for name in sorted(set(members) - set(FLOORS)):
        errors.append(f"{name}: a workspace crate on no floor (add it to FLOORS and ARCHITECTURE.md)")
    for name, package in sorted(members.items()):
        for dep in package["dependencies"]:
            if dep["name"] in FLOORS and name in FLOORS and FLOORS[dep["name"]] >= FLOORS[name]:
                errors.append(
                    f"{name} (floor {FLOORS[name]}) depends on {dep['name']} (floor {FLOORS[dep['name']]}): "
                    "a crate may use only crates below it"
                )
    return errors


def module_of(path, src):
    """The top-level module a source file belongs to (`engine` for src/engine.rs or src/engine/x.rs)."""
    rel = path.relative_to(src)
    return rel.parts[0].removesuffix(".rs")


def reexports(lib):
    """Item name -> defining module, from lib.rs's `pub use module::{A, B};` lines."""
    out = {}
    for module, items in re.findall(r"pub use (\w+)::\{?([^};]*)\}?;", lib, re.S):
        for item in re.split(r"[\s,]+", items):
            item = item.split(" as ")[-1].strip()
            if item:
                out[item] = module
    return out


def strip_tests(text):
    """The file without its `#[cfg(test)] mod tests { ... }` (tests may use anything)."""
    at = text.find("#[cfg(test)]\nmod tests")
    return text if at < 0 else text[:at]


def module_errors(crate_dir):
    src = crate_dir / "src"
    lib = src / "lib.rs" if (src / "lib.rs").exists() else src / "main.rs"
    modules = {p.stem for p in src.glob("*.rs")} | {p.name for p in src.iterdir() if p.is_dir()}
    modules -= {"lib", "main"}
    items = {item: m for item, m in reexports(lib.read_text()).items() if m in modules}
    errors = []
    if "internal" in modules:
        errors.append(f"{crate_dir.name}: module `internal`: make it documented API or move it down")
    edges = {m: set() for m in modules}
    for path in src.rglob("*.rs"):
        if path == lib:
            continue
        here = module_of(path, src)
        text = strip_tests(path.read_text())
        text = re.sub(r"//[^\n]*", "", text)  # doc links are not imports
        for group in re.findall(r"crate::\{([^}]*)\}", text):
            for name in re.findall(r"\w+", group):
                target = name if name in modules else items.get(name)
                if target and target != here:
                    edges[here].add(target)
        for name in re.findall(r"crate::(\w+)", text):
            target = name if name in modules else items.get(name)
            if target and target != here:
                edges[here].add(target)
    # a cycle is a strongly connected component of more than one module
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    errors += [f"{crate_dir.name}: modules {' <-> '.join(c)} use each other" for c in found]
    return errors


def main():
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps"], check=True, capture_output=True, text=True
        ).stdout
    )
    errors = crate_errors(metadata)
    for package in metadata["packages"]:
        if package["id"] in metadata["workspace_members"]:
            errors += module_errors(Path(package["manifest_path"]).parent)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    if errors:
        sys.exit(1)
    print(f"layers: {len(FLOORS)} crates on their floors, no module cycle, no `internal` module")


if __name__ == "__main__":
    main()
