"""The repository's shape: what the installed packages hold."""

import re
from pathlib import Path

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
        import pytest

        pytest.skip("import-linter is not installed (it comes with the dev extra)")
    res = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout and "4 kept" in res.stdout


def test_readme_is_a_users_guide_of_at_most_15000_characters():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text) <= 15_000
    assert text.index("make demo") < text.index("## The `seqrec` command")  # the two commands come first
