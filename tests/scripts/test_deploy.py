"""scripts/deploy end to end against a fake Azure CLI and a local Honeycomb/ARM stub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ops.markers import PROJECT_ROOT
from tests.ops.stub_apis import StubApis, stub_apis

TOKEN = "MTIzNDU2Nzg5.fake.discord-token-value"
HONEYCOMB_INGEST = "hcaik_fake-ingest-key"


def run_deploy(
    tmp_path: Path, stub: StubApis, *args: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[Any]]:
    fakebin = tmp_path / "bin"
    fakebin.mkdir(exist_ok=True)
    az = fakebin / "az"
    az.write_text(f"#!/bin/sh\nexec {sys.executable} {PROJECT_ROOT / 'tests/scripts/fake_az.py'} \"$@\"\n")
    az.chmod(0o755)
    log = tmp_path / "az.jsonl"
    full_env = {
        "PATH": f"{fakebin}:/usr/bin:/bin", "HOME": str(tmp_path), "PYTHON": sys.executable, "FAKE_AZ_LOG": str(log),
        "PACKAGE_OUT": str(tmp_path / "function-app.zip"), "HONEYCOMB_API_ENDPOINT": stub.url,
        "AZURE_RESOURCE_MANAGER_ENDPOINT": stub.url, "PYTHONPATH": str(PROJECT_ROOT), **env,
    }
    proc = subprocess.run([str(PROJECT_ROOT / "scripts/deploy"), *args], env=full_env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc, calls


def commands(calls: list[Any]) -> list[str]:
    return [" ".join(a for a in c["argv"] if not a.startswith("-"))[:40] for c in calls]


@pytest.fixture
def stub() -> Any:
    with stub_apis() as s:
        yield s


def test_first_run_deploys_everything_in_order(tmp_path: Path, stub: StubApis) -> None:
    proc, calls = run_deploy(tmp_path, stub, "-g", "bot", "--version", "abc123", "--url", "https://ci/1",
                             FAKE_AZ_FIRST_RUN="1", DISCORD_TOKEN=TOKEN, HONEYCOMB_API_KEY=HONEYCOMB_INGEST,
                             HONEYCOMB_CONFIG_KEY="hcxik_cfg")
    assert proc.returncode == 0, proc.stderr
    steps = [c for c in commands(calls) if not c.startswith("account")]
    assert steps[0].startswith("group exists")
    assert steps[1].startswith("deployment group show")
    creates = [c for c in calls if c["argv"][:3] == ["deployment", "group", "create"]]
    assert len(creates) == 2  # without the listener, then with the image just built
    assert "listenerImage=" in creates[0]["argv"]
    assert "listenerImage=dbotacrabc.azurecr.io/discord-bot-listener:abc123" in creates[1]["argv"]
    assert "serviceVersion=abc123" in creates[1]["argv"]
    for create in creates:
        assert "infra/main.bicep" in create["argv"]
        secure = [f for f in create["parameter_files"].values() if "discordToken" in f["names"]]
        assert secure == [{"mode": "0o600", "names": ["discordToken", "honeycombApiKey"]}]
    build = next(c["argv"] for c in calls if c["argv"][:2] == ["acr", "build"])
    assert "discord-bot-listener:abc123" in build and "Dockerfile" in build
    zip_call = next(c for c in calls if "config-zip" in c["argv"])
    assert "dbot-func-abc" in zip_call["argv"] and "--build-remote" in zip_call["argv"]
    assert "function_app.py" in zip_call["zip"] and "host.json" in zip_call["zip"]
    kept_out = ("tests/", "localdev/", "bench/", "docs/", "gateway_listener/", "node_modules/")
    assert not [n for n in zip_call["zip"] if n.startswith(kept_out)]
    job = next(c["argv"] for c in calls if c["argv"][:3] == ["containerapp", "job", "start"])
    assert "dbot-sync-commands" in job
    def at(*prefix: str) -> list[int]:
        return [i for i, c in enumerate(calls) if tuple(c["argv"][: len(prefix)]) == prefix]

    # The image, then the infrastructure that uses it, the package, the slash commands.
    assert at("acr", "build")[0] < at("deployment", "group", "create")[1] < at("functionapp")[0]
    assert at("functionapp")[0] < at("containerapp", "job", "start")[0]
    # Then the markers: a Honeycomb marker and an App Insights annotation for this version.
    marker, annotation = stub.requests
    assert marker.path == "/1/markers/__all__" and "abc123" in marker.body["message"]
    assert marker.body["url"] == "https://ci/1"
    assert annotation.method == "PUT" and annotation.body["AnnotationName"] == "abc123"
    assert annotation.headers["authorization"] == "Bearer fake-arm-token"
    # Secrets never on a command line or in the output.
    everything = json.dumps(calls) + proc.stdout + proc.stderr
    assert TOKEN not in everything and HONEYCOMB_INGEST not in everything and "hcxik_cfg" not in everything


def test_later_release_builds_then_deploys_once(tmp_path: Path, stub: StubApis) -> None:
    proc, calls = run_deploy(tmp_path, stub, "-g", "bot", "--version", "def456", JOB_POLL_SECONDS="0")
    assert proc.returncode == 0, proc.stderr
    creates = [c for c in calls if c["argv"][:3] == ["deployment", "group", "create"]]
    assert len(creates) == 1
    assert all("discordToken" not in f["names"] for f in creates[0]["parameter_files"].values())
    # No Honeycomb configuration key: the annotation alone.
    assert [r.method for r in stub.requests] == ["PUT"]


def test_missing_group_needs_a_location(tmp_path: Path, stub: StubApis) -> None:
    proc, calls = run_deploy(tmp_path, stub, "-g", "bot", FAKE_AZ_GROUP_EXISTS="false")
    assert proc.returncode == 2 and "--location" in proc.stderr
    assert not [c for c in calls if c["argv"][:2] == ["deployment", "group"]]
    proc, calls = run_deploy(tmp_path, stub, "-g", "bot", "-l", "westeurope", FAKE_AZ_GROUP_EXISTS="false")
    assert proc.returncode == 0, proc.stderr
    assert ["group", "create", "-n", "bot", "-l", "westeurope", "-o", "none"] in [c["argv"] for c in calls]


def test_arguments_are_checked(tmp_path: Path, stub: StubApis) -> None:
    proc, _ = run_deploy(tmp_path, stub)
    assert proc.returncode == 2 and "--resource-group" in proc.stderr
    proc, _ = run_deploy(tmp_path, stub, "--help")
    assert proc.returncode == 0 and "--resource-group" in proc.stdout and "set -e" not in proc.stdout
    proc, _ = run_deploy(tmp_path, stub, "-g", "bot", "--bogus")
    assert proc.returncode == 2 and "unknown argument" in proc.stderr
    assert os.access(PROJECT_ROOT / "scripts/deploy", os.X_OK)


def test_refused_marker_fails_the_run_after_the_release(tmp_path: Path, stub: StubApis) -> None:
    stub.status["/1/markers/"] = 401
    proc, calls = run_deploy(tmp_path, stub, "-g", "bot", "--version", "v9", HONEYCOMB_CONFIG_KEY="hcxik_bad")
    assert proc.returncode == 1
    assert "honeycomb: 401" in proc.stderr and "v9 is live, but its markers were not posted" in proc.stderr
    assert any("config-zip" in c["argv"] for c in calls) and "hcxik_bad" not in proc.stderr


def _create_args(calls: list[Any]) -> list[list[str]]:
    return [c["argv"] for c in calls if c["argv"][:3] == ["deployment", "group", "create"]]


def test_honeycomb_without_a_key_in_the_vault_deploys_without_it(tmp_path: Path, stub: StubApis) -> None:
    # The example parameters ask for Honeycomb; no key given and none stored: one line, no reference.
    proc, calls = run_deploy(tmp_path, stub, "-g", "bot", "--version", "v1", JOB_POLL_SECONDS="0")
    assert proc.returncode == 0, proc.stderr
    missing = [line for line in proc.stderr.splitlines() if "honeycomb-api-key" in line]
    assert missing == ["deploy: useHoneycomb is set but Key Vault dbot-kv-abc has no honeycomb-api-key: "
                       "deploying without Honeycomb (set HONEYCOMB_API_KEY to store it)"]
    assert all("honeycombKeyInVault=false" in argv for argv in _create_args(calls))
    secret_check = next(c["argv"] for c in calls if c["argv"][:2] == ["resource", "show"])
    assert "dbot-kv-abc/honeycomb-api-key" in secret_check


def test_honeycomb_key_in_the_vault_is_referenced(tmp_path: Path, stub: StubApis) -> None:
    proc, calls = run_deploy(tmp_path, stub, "-g", "bot", "--version", "v1", FAKE_AZ_HONEYCOMB_SECRET="1",
                             JOB_POLL_SECONDS="0")
    assert proc.returncode == 0, proc.stderr
    assert "honeycomb-api-key" not in proc.stderr
    assert all("honeycombKeyInVault=true" in argv for argv in _create_args(calls))
    # A key given now is stored by this deployment: no need to look in the vault.
    (tmp_path / "az.jsonl").unlink()
    proc, calls = run_deploy(tmp_path, stub, "-g", "bot", HONEYCOMB_API_KEY=HONEYCOMB_INGEST, JOB_POLL_SECONDS="0")
    assert proc.returncode == 0 and not [c for c in calls if c["argv"][:2] == ["resource", "show"]]


def test_waits_for_the_slash_command_job_and_reports_its_failure(tmp_path: Path, stub: StubApis) -> None:
    proc, calls = run_deploy(tmp_path, stub, "-g", "bot", JOB_POLL_SECONDS="0",
                             FAKE_AZ_JOB_STATUSES="Running,Running,Succeeded")
    assert proc.returncode == 0, proc.stderr
    polls = [c["argv"] for c in calls if c["argv"][:4] == ["containerapp", "job", "execution", "show"]]
    assert len(polls) == 3 and "dbot-sync-commands-x1y2z3" in polls[0]
    (tmp_path / "az.jsonl.polls").unlink()
    (tmp_path / "az.jsonl").unlink()
    marked = len(stub.requests)
    proc, calls = run_deploy(tmp_path, stub, "-g", "bot", JOB_POLL_SECONDS="0", FAKE_AZ_JOB_STATUSES="Running,Failed")
    assert proc.returncode == 1 and "slash-command sync dbot-sync-commands-x1y2z3 ended Failed" in proc.stderr
    assert len(stub.requests) == marked  # no markers for a release whose commands did not sync


def test_waits_are_bounded(tmp_path: Path, stub: StubApis) -> None:
    proc, calls = run_deploy(tmp_path, stub, "-g", "bot", JOB_POLL_SECONDS="0", JOB_TIMEOUT="0",
                             FAKE_AZ_JOB_STATUSES="Running")
    assert proc.returncode == 1 and "still Running after 0s" in proc.stderr
    zip_call = next(c["argv"] for c in calls if "config-zip" in c["argv"])
    assert zip_call[zip_call.index("--timeout") + 1] == "900"
