"""Deployment markers: ``python -m ops.markers --version V [--url U] [--message M] [--local]``.

Each release leaves a marker in Honeycomb (``POST /1/markers/<dataset>``, a configuration key
with the markers permission) and, when ``APPLICATIONINSIGHTS_RESOURCE_ID`` is set, a release
annotation in Application Insights (Azure Resource Manager, ``azure-identity``): the dotted
deployment lines on the graphs. ``--local`` records the marker in a JSON-lines file only
(``.localdev/markers.jsonl`` by default; the local trace explorer draws it) and calls no API.

A missing setting or a refused request is one line on stderr and a non-zero exit (2 for
settings, 1 for an API); keys are never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import requests

from ops.api import ALL_DATASETS, HONEYCOMB_ENDPOINT, ApiError, endpoint, missing_honeycomb_key, send

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOCAL_FILE = PROJECT_ROOT / ".localdev" / "markers.jsonl"
ARM_ENDPOINT = "https://management.azure.com"
ANNOTATIONS_API_VERSION = "2015-05-01"
MARKER_TYPE = "deploy"


class TokenCredential(Protocol):
    def get_token(self, *scopes: str) -> Any: ...


@dataclass(frozen=True)
class Marker:
    version: str
    message: str
    url: str | None
    time_unix_nano: int

    def local_record(self) -> dict[str, object]:
        return {"time_unix_nano": self.time_unix_nano, "type": MARKER_TYPE, "version": self.version,
                "message": self.message, "url": self.url}


@dataclass(frozen=True)
class MarkerSettings:
    """Read once from the environment (see the README's configuration table)."""

    honeycomb_key: str | None = None
    honeycomb_endpoint: str = HONEYCOMB_ENDPOINT
    honeycomb_dataset: str = ALL_DATASETS
    appinsights_resource_id: str | None = None
    arm_endpoint: str = ARM_ENDPOINT
    local_file: Path | None = None

    def __repr__(self) -> str:  # the key never shows, even in a traceback's locals
        return f"MarkerSettings(endpoint={self.honeycomb_endpoint!r}, dataset={self.honeycomb_dataset!r}, ...)"


def load_settings(env: Mapping[str, str]) -> MarkerSettings:
    resource_id = env.get("APPLICATIONINSIGHTS_RESOURCE_ID", "").strip() or None
    if resource_id and "/providers/microsoft.insights/components/" not in resource_id.lower():
        raise ApiError("APPLICATIONINSIGHTS_RESOURCE_ID: expected /subscriptions/.../providers/"
                          "Microsoft.Insights/components/<name> (az monitor app-insights component show --query id)", 2)
    local = env.get("LOCAL_MARKERS_FILE", "").strip()
    return MarkerSettings(
        honeycomb_key=env.get("HONEYCOMB_CONFIG_KEY", "").strip() or None,
        honeycomb_endpoint=endpoint(env, "HONEYCOMB_API_ENDPOINT", HONEYCOMB_ENDPOINT),
        honeycomb_dataset=env.get("HONEYCOMB_DATASET", "").strip() or ALL_DATASETS,
        appinsights_resource_id=resource_id.rstrip("/") if resource_id else None,
        arm_endpoint=endpoint(env, "AZURE_RESOURCE_MANAGER_ENDPOINT", ARM_ENDPOINT),
        local_file=Path(local) if local else None,
    )


def record_local(marker: Marker, path: Path) -> Path:
    """Append one JSON line (the contract the local trace explorer reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(marker.local_record(), separators=(",", ":")) + "\n")
    return path


def post_honeycomb(marker: Marker, settings: MarkerSettings, session: requests.Session) -> str:
    """Create the marker; returns its id."""
    if not settings.honeycomb_key:
        raise missing_honeycomb_key("'Manage markers'", ", or use --local")
    url = f"{settings.honeycomb_endpoint}/1/markers/{quote(settings.honeycomb_dataset, safe='')}"
    body: dict[str, object] = {"message": marker.message, "type": MARKER_TYPE,
                               "start_time": marker.time_unix_nano // 1_000_000_000}
    if marker.url:
        body["url"] = marker.url
    key = settings.honeycomb_key
    resp = send(session, "honeycomb", "POST", url, key, json=body, headers={"X-Honeycomb-Team": key})
    try:
        return str(resp.json().get("id", "?"))
    except ValueError:
        return "?"


def post_annotation(marker: Marker, settings: MarkerSettings, session: requests.Session,
                    credential: TokenCredential) -> str:
    """Create an Application Insights release annotation (Category Deployment); returns its id."""
    assert settings.appinsights_resource_id
    try:
        token = credential.get_token(f"{settings.arm_endpoint}/.default").token
    except Exception as exc:  # azure-identity raises several types; all mean "not signed in"
        raise ApiError(f"app insights: no Azure credential ({type(exc).__name__}); run az login "
                          "or azure/login in the pipeline") from None
    annotation_id = str(uuid.uuid4())
    event_time = datetime.fromtimestamp(marker.time_unix_nano / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    properties = {"ReleaseName": marker.version, "ReleaseDescription": marker.message}
    if marker.url:
        properties["ReleaseUrl"] = marker.url
    body = {"Id": annotation_id, "AnnotationName": marker.version, "EventTime": event_time,
            "Category": "Deployment", "Properties": json.dumps(properties)}
    url = f"{settings.arm_endpoint}{settings.appinsights_resource_id}/Annotations"
    send(session, "app insights", "PUT", url, token, json=body, params={"api-version": ANNOTATIONS_API_VERSION},
          headers={"Authorization": f"Bearer {token}"})
    return annotation_id


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ops.markers", description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--version", required=True, help="the release, e.g. the commit or tag")
    p.add_argument("--url", help="a link for the marker (the pipeline run, the release notes)")
    p.add_argument("--message", help="marker text (default: 'deploy <version>')")
    p.add_argument("--local", action="store_true",
                   help="record in the local markers file only; no account, no API call")
    p.add_argument("--no-honeycomb", action="store_true",
                   help="post only the Application Insights annotation (no HONEYCOMB_CONFIG_KEY needed)")
    p.add_argument("--local-file", type=Path,
                   help="local markers file (env LOCAL_MARKERS_FILE; default .localdev/markers.jsonl)")
    return p


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
         session: requests.Session | None = None, credential: TokenCredential | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(os.environ if environ is None else environ)
        version = args.version.strip()
        if not version:
            raise ApiError("--version: must not be empty", 2)
        message = (args.message or "").strip() or f"deploy {version}"
        if version not in message:
            message = f"{message} ({version})"  # every marker names its release
        marker = Marker(version=version, message=message,
                        url=args.url or None, time_unix_nano=time.time_ns())
        local_file = args.local_file or settings.local_file or (DEFAULT_LOCAL_FILE if args.local else None)
        if local_file is not None:
            print(f"local: marker recorded in {record_local(marker, local_file)}")
        if args.local:
            return 0
        if args.no_honeycomb and not settings.appinsights_resource_id:
            raise ApiError("--no-honeycomb: APPLICATIONINSIGHTS_RESOURCE_ID is not set either: nothing to post", 2)
        http = session or requests.Session()
        if not args.no_honeycomb:
            print(f"honeycomb: marker {post_honeycomb(marker, settings, http)} for {marker.version}")
        if settings.appinsights_resource_id:
            if credential is None:
                # A service principal from the environment, or the az CLI's sign-in (az login
                # locally, azure/login with OIDC in the pipeline). No managed-identity probe:
                # this runs on laptops and CI runners, not in Azure.
                from azure.identity import AzureCliCredential, ChainedTokenCredential, EnvironmentCredential

                credential = ChainedTokenCredential(EnvironmentCredential(), AzureCliCredential())
            annotation = post_annotation(marker, settings, http, credential)
            print(f"app insights: annotation {annotation} for {marker.version}")
    except ApiError as exc:
        print(f"ops.markers: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"ops.markers: local markers file: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
