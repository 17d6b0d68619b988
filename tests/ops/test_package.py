"""python -m ops.package: the function app zip honours .funcignore and holds what the app imports."""

from __future__ import annotations

import zipfile
from pathlib import Path

from ops import package


def test_package_holds_the_app_and_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / "app.zip"
    assert package.main(["--out", str(out)]) == 0
    names = set(zipfile.ZipFile(out).namelist())
    assert {"function_app.py", "host.json", "requirements.txt", "feature_flags.example.json"} <= names
    assert any(n.startswith("command_functions/") for n in names) and any(n.startswith("shared/") for n in names)
    kept_out = ("tests/", "localdev/", "bench/", "docs/", "node_modules/", ".venv", "infra/", "gateway_listener/",
                "ops/", ".git", "local.settings", "Dockerfile", "requirements-dev.txt", "dist/")
    assert [n for n in names if n.startswith(kept_out) or "__pycache__" in n] == []


def test_ignore_patterns(tmp_path: Path) -> None:
    (tmp_path / ".funcignore").write_text("# comment\ntests/\n*.md\nlocal.settings.json\n")
    for rel in ("function_app.py", "host.json", "requirements.txt", "README.md", "local.settings.json",
                "tests/test_x.py", "pkg/tests/keep.py", "pkg/mod.py", "pkg/NOTES.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    files = list(package.package_files(tmp_path))
    # "tests/" matches a directory at any depth, as in .gitignore; "*.md" any file name.
    assert files == [".funcignore", "function_app.py", "host.json", "requirements.txt", "pkg/mod.py"]


def test_missing_entry_point_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".funcignore").write_text("host.json\n")
    for rel in ("function_app.py", "host.json", "requirements.txt"):
        (tmp_path / rel).write_text("x")
    try:
        package.build(tmp_path / "out.zip", root=tmp_path)
    except SystemExit as exc:
        assert "host.json" in str(exc)
    else:
        raise AssertionError("a package without host.json was built")
