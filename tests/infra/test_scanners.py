"""The infrastructure code passes its scanners: pycep parses every Bicep file, checkov finds no
failed check in infra/, the workflows or the Dockerfile, and hadolint, actionlint and zizmor are clean.
A check may be skipped only inline, next to the resource, with a reason."""

from __future__ import annotations

import re
from typing import Any

from tests.infra.conftest import BICEP_FILES, ROOT, WORKFLOWS, run, tool

SKIP = re.compile(r"checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def test_every_bicep_file_parses(bicep: dict[str, Any]) -> None:
    assert {"main.bicep", "modules/functionapp.bicep", "modules/listener.bicep"} <= set(bicep)
    assert len(bicep) == len(BICEP_FILES)
    errors = {path: tree["error"] for path, tree in bicep.items() if "error" in tree}
    assert errors == {}


def test_checkov_finds_no_failed_check(checkov_reports: list[dict[str, Any]]) -> None:
    assert {"bicep", "github_actions", "dockerfile", "secrets"} <= {r["check_type"] for r in checkov_reports}
    for report in checkov_reports:
        summary = report["summary"]
        failed = [(c["check_id"], c["file_path"], c["resource"]) for c in report["results"]["failed_checks"]]
        assert failed == [], report["check_type"]
        assert summary["parsing_errors"] == 0, report["check_type"]
    bicep = next(r for r in checkov_reports if r["check_type"] == "bicep")
    assert bicep["summary"]["passed"] >= 25 and bicep["summary"]["resource_count"] >= 40


def test_skips_are_inline_with_a_reason(checkov_reports: list[dict[str, Any]]) -> None:
    scanned = [*ROOT.joinpath("infra").rglob("*.bicep"), ROOT / "Dockerfile", *WORKFLOWS]
    inline: set[str] = set()
    for path in scanned:
        for match in SKIP.finditer(path.read_text(encoding="utf-8")):
            assert (match.group(2) or "").strip(), f"{path.name}: checkov:skip={match.group(1)} needs a reason"
            inline.add(match.group(1))
    skipped = {c["check_id"] for r in checkov_reports for c in r["results"]["skipped_checks"]}
    assert skipped <= inline  # nothing skipped from elsewhere
    for config in (".checkov.yml", ".checkov.yaml", "infra/.checkov.yml", "infra/.checkov.yaml"):
        assert not (ROOT / config).exists(), f"{config}: skip checks inline, next to the resource"


def test_hadolint_dockerfile() -> None:
    proc = run(tool("hadolint"), "--failure-threshold", "style", "Dockerfile")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_workflows() -> None:
    assert len(WORKFLOWS) >= 2
    proc = run(tool("actionlint"), "-no-color", *map(str, WORKFLOWS))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_workflows() -> None:
    proc = run(tool("zizmor"), "--offline", "--no-progress", "--persona", "auditor", str(ROOT / ".github/workflows"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actions_pinned_by_commit_sha() -> None:
    for workflow in WORKFLOWS:
        for ref in re.findall(r"uses:\s*(\S+)", workflow.read_text(encoding="utf-8")):
            if ref.startswith(("$/", "./")):
                continue
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{workflow.name}: {ref} not pinned"
