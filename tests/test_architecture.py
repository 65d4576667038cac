"""The package's shape: one `yuan` namespace whose packaged list matches the tree, and imports that
follow the data flow

    frontend -> quant -> compiler.ir -> compiler passes / backends -> schedules -> runtime

with the application layer (yuan/: cli, demo, training recipes, checkpoints) on top. Each part may
import only the parts listed for it in MAY_IMPORT; every import in a package file is checked,
function-local ones included (a lazy import does not make a forbidden edge acceptable)."""
import ast
import pathlib
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# installed name -> folder in the checkout (pyproject's package-dir)
FOLDERS = {"yuan": "yuan", "yuan.frontend": "frontend", "yuan.quant": "quant", "yuan.compiler": "compiler",
           "yuan.schedules": "schedules", "yuan.runtime": "runtime", "yuan.configs": "configs"}

IR = "yuan.compiler.ir"
COMPILER_PARTS = (IR, "yuan.compiler.onnx", "yuan.compiler.passes", "yuan.compiler")
# part -> the parts its modules may import (its own part included)
MAY_IMPORT = {
    "yuan": None,                                      # the app layer: anything
    "yuan.frontend": {"yuan.frontend", IR},            # tracing produces a Graph
    "yuan.quant": {"yuan.quant", "yuan.frontend", IR, "yuan.compiler.passes"},   # graph PTQ folds BN first
    IR: {IR},
    "yuan.compiler.onnx": {"yuan.compiler.onnx", IR},
    "yuan.compiler.passes": {"yuan.compiler.passes", IR},
    "yuan.compiler": set(COMPILER_PARTS) | {"yuan.schedules", "yuan.configs"},   # lowering, backends, build
    "yuan.schedules": {"yuan.schedules"},
    "yuan.runtime": {"yuan.runtime"},
    "yuan.configs": {"yuan.configs"},
}


def _part(module: str) -> str:
    """The most specific key of MAY_IMPORT that `module` belongs to."""
    return max((p for p in MAY_IMPORT if module == p or module.startswith(p + ".")), key=len)


def _package_files():
    """(module name, path) of every .py file of the installed package."""
    for pkg, folder in FOLDERS.items():
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            # yuan/ holds only the app layer; the other folders are mapped into it
            yield ".".join([pkg] + parts), path


def _imports(module: str, path: pathlib.Path):
    """(imported module, line) for every import statement anywhere in the file."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_pkg else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            names = [f"{target}.{a.name}" for a in node.names] if target == "yuan" else [target]
            for name in names:
                yield name, node.lineno


def test_imports_follow_the_data_flow():
    wrong = []
    for module, path in _package_files():
        here = _part(module)
        allowed = MAY_IMPORT[here]
        for target, line in _imports(module, path):
            if allowed is None or not (target == "yuan" or target.startswith("yuan.")):
                continue
            if target == "yuan" or _part(target) not in allowed:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {module} ({here}) imports {target}")
    assert not wrong, "imports against the data flow:\n" + "\n".join(wrong)


@pytest.mark.parametrize("folder", sorted(set(FOLDERS.values()) | {"tests", "bench"}))
def test_no_bare_imports_of_our_folders(folder):
    """`import compiler` would pick up any unrelated package of that name: always `yuan.compiler`."""
    bare = {"frontend", "quant", "compiler", "schedules", "runtime", "configs"}
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in bare]
    assert not found, "\n".join(found)


def test_packaged_subpackages_match_the_tree():
    """pyproject.toml lists the packages explicitly (package-dir mapping): a new folder with an
    __init__.py must be listed there too, or wheels silently lack it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == FOLDERS
    in_tree = set()
    for pkg, folder in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            in_tree.add(".".join([pkg] + list(rel.parts)))
    assert set(config["packages"]) == in_tree


def test_package_data_is_declared():
    """Files read at run time travel in the wheel (tests/e2e/test_packaging.py installs one)."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "*.yaml" in data["yuan.configs"]
    assert "*.c" in data["yuan.compiler.backends"] and (ROOT / "compiler/backends/cuda_stub.c").exists()
    assert "arm64/*.sh" in data["yuan.runtime"] and (ROOT / "runtime/arm64/build_arm64_root.sh").exists()
    from yuan.runtime.deploy_kit import KIT_FILES   # the C++ kit that `yuan deploy-kit` copies
    kit_globs = {"cpp/*.cc", "cpp/*.h", "cpp/Makefile"}
    assert kit_globs <= set(data["yuan.runtime"]) and all((ROOT / "runtime/cpp" / f).exists() for f in KIT_FILES)


def test_public_names_resolve():
    import yuan
    for name in yuan.__all__:
        assert getattr(yuan, name) is not None, name
    assert yuan.compile.__module__ == "yuan.api" and yuan.load.__module__ == "yuan.runtime"
