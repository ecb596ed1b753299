"""The repository's shape: what the installed packages hold."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_no_benchmarks_inside_an_installed_package():
    """The benchmark suite is a tool of the repository (recipes/benchmarks), not of the library."""
    text = (ROOT / "pyproject.toml").read_text()
    found = re.search(r"\[tool\.setuptools\.packages\.find\]\s*include\s*=\s*\[([^\]]*)\]", text)
    assert found, "pyproject.toml: no [tool.setuptools.packages.find] include list"
    patterns = re.findall(r'"([^"]+)"', found.group(1))
    installed = [ROOT / p.rstrip("*") for p in patterns]
    assert {p.name for p in installed} == {"pipeline", "data_prep"}
    for pkg in installed:
        assert pkg.is_dir()
        assert not [d for d in pkg.rglob("*") if d.is_dir() and "bench" in d.name], pkg
    assert (ROOT / "recipes" / "benchmarks" / "suite.py").is_file()


def test_import_contracts_hold():
    """The one-way layers of pyproject.toml's [tool.importlinter] (docs/design.md, "Layers")."""
    import shutil
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.is_file():
        exe = shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter is not installed (it comes with the dev extra)")
    res = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout and "5 kept" in res.stdout


def test_installed_packages_name_no_path_into_recipes():
    """pipeline and data_prep are installed without recipes/, so no code of theirs may build a
    path into it (imports are import-linter's contract); a recipe passes what they need in."""
    import ast

    for pkg in ("pipeline", "data_prep"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    assert not re.fullmatch(r"recipes([/\\].*)?", node.value, re.S), f"{path}: {node.value[:80]!r}"


@pytest.mark.parametrize("recipe", ["speech_ctc", "video_activity"])
def test_recipe_docstring_lists_its_stages(recipe):
    """The stage list at the top of run.py (what --help readers and newcomers see) is the table
    that runs."""
    import importlib

    run = importlib.import_module(f"recipes.{recipe}.run")
    documented = re.findall(r"^ {4}(\d+) ([a-z_]+) ", run.__doc__, re.M)
    assert [(int(n), name) for n, name in documented] == [(row.number, row.name) for row in run.STAGES]


def test_readme_is_a_users_guide_of_at_most_15000_characters():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text) <= 15_000
    assert text.index("make demo") < text.index("## The `seqrec` command")  # the two commands come first
