"""The infrastructure checks: the scanners run from their own venv (.venv-infra, scripts/setup).

Each scanner runs once per session (checkov over everything takes ~15 s) and tests read its report.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TOOLS = ROOT / ".venv-infra" / "bin"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def tool(name: str) -> str:
    path = TOOLS / name
    assert path.exists(), f"{path} missing: run scripts/setup (it installs requirements-infra.txt into .venv-infra)"
    return str(path)


def run(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def bicep() -> dict[str, Any]:
    """Every .bicep file parsed by pycep, keyed by path relative to infra/."""
    proc = run(tool("python"), str(ROOT / "tests/infra/bicep_json.py"), *map(str, BICEP_FILES))
    parsed = json.loads(proc.stdout)
    return {str(Path(p).relative_to(INFRA)): tree for p, tree in parsed.items()}


def _json_documents(text: str) -> list[dict[str, Any]]:
    """checkov prints one JSON document per scanned root; each may be a list of reports."""
    decoder, i, docs = json.JSONDecoder(), 0, []
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        doc, i = decoder.raw_decode(text, i)
        docs.extend(doc if isinstance(doc, list) else [doc])
    return docs


@pytest.fixture(scope="session")
def checkov_reports() -> list[dict[str, Any]]:
    """checkov over infra/, the workflows and the Dockerfile (two runs side by side; no network)."""
    common = ["--skip-download", "--compact", "-o", "json"]
    runs = [
        [tool("checkov"), "-d", "infra", "-d", ".github/workflows",
         "--framework", "bicep", "github_actions", "secrets", *common],
        [tool("checkov"), "-f", "Dockerfile", "--framework", "dockerfile", "secrets", *common],
    ]
    procs = [subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for argv in runs]
    reports: list[dict[str, Any]] = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert out.strip(), err[-2000:]
        reports.extend(_json_documents(out))
    return reports
