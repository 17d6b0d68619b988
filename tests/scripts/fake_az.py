#!/usr/bin/env python3
"""A stand-in for the Azure CLI: logs each call (argv plus what it can check locally) as a JSON
line to $FAKE_AZ_LOG and answers as az does for the commands scripts/deploy uses."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
import zipfile
from pathlib import Path

OUTPUTS: dict[str, object] = {
    "registryName": "dbotacrabc", "registryServer": "dbotacrabc.azurecr.io", "functionAppName": "dbot-func-abc",
    "syncCommandsJobName": "dbot-sync-commands", "keyVaultName": "dbot-kv-abc", "queueEndpoint": "https://x/",
    "appInsightsId": "/subscriptions/0000/resourceGroups/bot/providers/Microsoft.Insights/components/dbot-appi",
    "listenerAppNames": ["dbot-listener-0"],
}


def main(argv: list[str]) -> int:
    entry: dict[str, object] = {"argv": argv}
    status = 0
    cmd = " ".join(a for a in argv if not a.startswith("-"))[:60]
    out = ""
    if argv[:2] == ["account", "show"]:
        out = "0000"
    elif argv[:2] == ["account", "get-access-token"]:
        expires = int(time.time()) + 3600
        out = json.dumps({"accessToken": "fake-arm-token", "expiresOn": time.strftime("%Y-%m-%d %H:%M:%S.000000"),
                          "expires_on": expires, "subscription": "0000", "tenant": "t", "tokenType": "Bearer"})
    elif cmd.startswith("group exists"):
        out = os.environ.get("FAKE_AZ_GROUP_EXISTS", "true")
    elif cmd.startswith("deployment group show"):
        if os.environ.get("FAKE_AZ_FIRST_RUN"):
            print("ERROR: (DeploymentNotFound)", file=sys.stderr)
            status = 3
        else:  # --query properties.outputs.<name>.value
            query = argv[argv.index("--query") + 1] if "--query" in argv else "properties.outputs.registryName.value"
            out = str(OUTPUTS[query.split(".")[2]])
    elif cmd.startswith("deployment group create"):
        files = [a[1:] for a in argv if a.startswith("@")]
        described = {}
        for f in files:
            with open(f) as fh:
                names = sorted(json.load(fh)["parameters"])
            described[f] = {"mode": oct(stat.S_IMODE(os.stat(f).st_mode)), "names": names}
        entry["parameter_files"] = described
        out = json.dumps({k: {"type": "String", "value": v} for k, v in OUTPUTS.items()})
    elif cmd.startswith("acr show"):
        out = str(OUTPUTS["registryServer"])
    elif cmd.startswith("resource show"):  # the vault's honeycomb-api-key secret (metadata only)
        if os.environ.get("FAKE_AZ_HONEYCOMB_SECRET"):
            out = "/subscriptions/0000/resourceGroups/bot/providers/Microsoft.KeyVault/vaults/dbot-kv-abc/secrets/x"
        else:
            print("ERROR: (ResourceNotFound)", file=sys.stderr)
            status = 3
    elif cmd.startswith("containerapp job start"):
        out = "dbot-sync-commands-x1y2z3"
    elif cmd.startswith("containerapp job execution show"):
        statuses = os.environ.get("FAKE_AZ_JOB_STATUSES", "Running,Succeeded").split(",")
        count_file = Path(os.environ["FAKE_AZ_LOG"] + ".polls")
        polls = int(count_file.read_text()) if count_file.exists() else 0
        count_file.write_text(str(polls + 1))
        out = statuses[min(polls, len(statuses) - 1)]
    elif "config-zip" in argv:
        src = argv[argv.index("--src") + 1]
        entry["zip"] = sorted(zipfile.ZipFile(src).namelist())
    with open(os.environ["FAKE_AZ_LOG"], "a") as log:
        log.write(json.dumps(entry) + "\n")
    if out:
        print(out)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
