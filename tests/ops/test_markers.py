"""python -m ops.markers against local stubs of Honeycomb and Azure Resource Manager."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ops import markers
from tests.ops.stub_apis import StubApis, stub_apis

KEY = "hcxik_01configkeyvalue0000000000"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.fake"
RESOURCE_ID = "/subscriptions/0000/resourceGroups/bot/providers/Microsoft.Insights/components/dbot-appi"


class FakeCredential:
    def __init__(self, fail: bool = False) -> None:
        self.scopes: list[str] = []
        self.fail = fail

    def get_token(self, *scopes: str) -> Any:
        self.scopes.extend(scopes)
        if self.fail:
            raise RuntimeError("DefaultAzureCredential failed to retrieve a token")
        return type("AccessToken", (), {"token": TOKEN, "expires_on": int(time.time()) + 3600})()


@pytest.fixture
def stub() -> Iterator[StubApis]:
    with stub_apis() as s:
        yield s


def env_for(stub: StubApis, **extra: str) -> dict[str, str]:
    return {"HONEYCOMB_CONFIG_KEY": KEY, "HONEYCOMB_API_ENDPOINT": stub.url,
            "AZURE_RESOURCE_MANAGER_ENDPOINT": stub.url, **extra}


def test_posts_a_honeycomb_deploy_marker(stub: StubApis, capsys: pytest.CaptureFixture[str]) -> None:
    before = int(time.time())
    rc = markers.main(["--version", "abc123", "--url", "https://ci.example/run/7"], env_for(stub))
    assert rc == 0
    [req] = stub.requests
    assert (req.method, req.path) == ("POST", "/1/markers/__all__")
    assert req.headers["x-honeycomb-team"] == KEY
    assert req.body["type"] == "deploy" and req.body["url"] == "https://ci.example/run/7"
    assert "abc123" in req.body["message"]
    assert before <= req.body["start_time"] <= int(time.time())
    out = capsys.readouterr()
    assert "marker mk-1 for abc123" in out.out and KEY not in out.out + out.err


def test_dataset_and_message_from_settings(stub: StubApis) -> None:
    rc = markers.main(["--version", "v2", "--message", "release two"], env_for(stub, HONEYCOMB_DATASET="bot functions"))
    assert rc == 0
    [req] = stub.requests
    assert req.path == "/1/markers/bot%20functions"
    assert req.body["message"] == "release two (v2)" and "url" not in req.body


def test_app_insights_annotation_when_resource_id_set(stub: StubApis) -> None:
    cred = FakeCredential()
    rc = markers.main(["--version", "v3", "--url", "https://ci.example/3"],
                      env_for(stub, APPLICATIONINSIGHTS_RESOURCE_ID=RESOURCE_ID), credential=cred)
    assert rc == 0
    honeycomb, arm = stub.requests
    assert honeycomb.path.startswith("/1/markers/")
    assert (arm.method, arm.path) == ("PUT", f"{RESOURCE_ID}/Annotations")
    assert arm.query == {"api-version": ["2015-05-01"]}
    assert arm.headers["authorization"] == f"Bearer {TOKEN}"
    assert cred.scopes == [f"{stub.url}/.default"]
    assert arm.body["Category"] == "Deployment" and arm.body["AnnotationName"] == "v3"
    assert json.loads(arm.body["Properties"]) == {"ReleaseName": "v3", "ReleaseDescription": "deploy v3",
                                                  "ReleaseUrl": "https://ci.example/3"}


def test_no_annotation_without_resource_id(stub: StubApis) -> None:
    assert markers.main(["--version", "v4"], env_for(stub), credential=FakeCredential()) == 0
    assert [r.path for r in stub.requests] == ["/1/markers/__all__"]


def test_missing_key_is_one_line_and_exit_2(stub: StubApis, capsys: pytest.CaptureFixture[str]) -> None:
    env = env_for(stub)
    del env["HONEYCOMB_CONFIG_KEY"]
    assert markers.main(["--version", "v5"], env) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HONEYCOMB_CONFIG_KEY" in err
    assert stub.requests == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429])
def test_honeycomb_refusal_never_shows_the_key(stub: StubApis, capsys: pytest.CaptureFixture[str], status: int) -> None:
    stub.status["/1/markers/"] = status
    stub.echo_headers = True  # the error body repeats our headers: the key must still not be printed
    assert markers.main(["--version", "v6"], env_for(stub, APPLICATIONINSIGHTS_RESOURCE_ID=RESOURCE_ID),
                        credential=FakeCredential()) == 1
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and f"honeycomb: {status}" in out.err
    assert KEY not in out.out + out.err
    assert len(stub.requests) == 1  # no annotation after a failed marker


def test_arm_refusal_is_one_line(stub: StubApis, capsys: pytest.CaptureFixture[str]) -> None:
    stub.status["/subscriptions/"] = 403
    stub.echo_headers = True
    rc = markers.main(["--version", "v7"], env_for(stub, APPLICATIONINSIGHTS_RESOURCE_ID=RESOURCE_ID),
                      credential=FakeCredential())
    assert rc == 1
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and "app insights: 403" in out.err
    assert TOKEN not in out.out + out.err and KEY not in out.out + out.err


def test_no_azure_credential_is_one_line(stub: StubApis, capsys: pytest.CaptureFixture[str]) -> None:
    rc = markers.main(["--version", "v8"], env_for(stub, APPLICATIONINSIGHTS_RESOURCE_ID=RESOURCE_ID),
                      credential=FakeCredential(fail=True))
    assert rc == 1
    assert "no Azure credential" in capsys.readouterr().err


def test_unreachable_api_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with stub_apis() as gone:
        url = gone.url  # closed once the block ends: connection refused
    rc = markers.main(["--version", "v9"], {"HONEYCOMB_CONFIG_KEY": KEY, "HONEYCOMB_API_ENDPOINT": url})
    assert rc == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "request failed" in err and KEY not in err


def test_bad_settings_are_refused_before_any_call(stub: StubApis, capsys: pytest.CaptureFixture[str]) -> None:
    assert markers.main(["--version", "v"], env_for(stub, HONEYCOMB_API_ENDPOINT="api.honeycomb.io")) == 2
    assert markers.main(["--version", "v"], env_for(stub, APPLICATIONINSIGHTS_RESOURCE_ID="dbot-appi")) == 2
    assert markers.main(["--version", " "], env_for(stub)) == 2
    assert stub.requests == []
    assert capsys.readouterr().err.count("\n") == 3


def test_local_alone_calls_no_api(stub: StubApis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = tmp_path / "default" / "markers.jsonl"
    monkeypatch.setattr(markers, "DEFAULT_LOCAL_FILE", default)
    before = time.time_ns()
    with_accounts = env_for(stub, APPLICATIONINSIGHTS_RESOURCE_ID=RESOURCE_ID)
    assert markers.main(["--version", "v10", "--local"], with_accounts) == 0
    assert markers.main(["--version", "v11", "--local", "--url", "https://x.example"], {}) == 0
    assert stub.requests == []
    first, second = (json.loads(line) for line in default.read_text().splitlines())
    assert set(first) == {"time_unix_nano", "type", "version", "message", "url"}
    assert first["type"] == "deploy" and first["version"] == "v10" and first["url"] is None
    assert before <= first["time_unix_nano"] <= second["time_unix_nano"] <= time.time_ns()
    assert second["url"] == "https://x.example" and "v11" in second["message"]


def test_local_file_from_flag_or_environment(stub: StubApis, tmp_path: Path) -> None:
    flag, env_file = tmp_path / "flag.jsonl", tmp_path / "env.jsonl"
    env = {"LOCAL_MARKERS_FILE": str(env_file)}
    assert markers.main(["--version", "a", "--local", "--local-file", str(flag)], env) == 0
    assert markers.main(["--version", "b", "--local"], env) == 0
    assert [json.loads(x)["version"] for x in flag.read_text().splitlines()] == ["a"]
    assert [json.loads(x)["version"] for x in env_file.read_text().splitlines()] == ["b"]
    # A local file without --local: recorded locally and posted.
    assert markers.main(["--version", "c", "--local-file", str(flag)], env_for(stub)) == 0
    assert len(flag.read_text().splitlines()) == 2 and len(stub.requests) == 1


def test_command_line_entry_point(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "LOCAL_MARKERS_FILE": str(tmp_path / "m.jsonl")}
    ok = subprocess.run([sys.executable, "-m", "ops.markers", "--version", "cli", "--local"],
                        env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "m.jsonl").read_text())["version"] == "cli"
    missing = subprocess.run([sys.executable, "-m", "ops.markers", "--version", "cli"],
                             env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1


def test_annotation_only(stub: StubApis, capsys: pytest.CaptureFixture[str]) -> None:
    env = {"AZURE_RESOURCE_MANAGER_ENDPOINT": stub.url, "APPLICATIONINSIGHTS_RESOURCE_ID": RESOURCE_ID}
    assert markers.main(["--version", "v12", "--no-honeycomb"], env, credential=FakeCredential()) == 0
    assert [r.method for r in stub.requests] == ["PUT"]
    assert markers.main(["--version", "v12", "--no-honeycomb"], {}) == 2
    assert "nothing to post" in capsys.readouterr().err
