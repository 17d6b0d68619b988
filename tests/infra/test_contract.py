"""The IaC and the code agree: queues for every command, every setting the code needs at start-up,
always-ready entries naming real functions, and one version of every package both sides install."""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway_listener.settings import load_listener_settings
from shared.errors import SettingsError
from shared.registry import COMMAND_RUNS_TABLE, COMMANDS, NON_COMMAND_QUEUES, REMINDERS_TABLE, poison_queue_name
from shared.settings import load_settings
from tests.infra.conftest import INFRA, ROOT

ENV_NAME = re.compile(r"^(?:[A-Z][A-Z0-9_]*|Azure\w+__\w+)$")
KV_REFERENCE = re.compile(r"^@Microsoft\.KeyVault\(SecretUri=\$\{secretUris\.\w+\}\)$")
SECRETS = {"DISCORD_TOKEN", "HONEYCOMB_API_KEY", "APPLICATIONINSIGHTS_CONNECTION_STRING"}
# The identity-based form the IaC uses for a setting the code names by its connection-string form.
IDENTITY_FORM = {"AzureWebJobsStorage": "AzureWebJobsStorage__queueServiceUri"}
FAKES = {
    "AzureWebJobsStorage__queueServiceUri": "https://dbotst.queue.core.windows.net/",
    "AzureWebJobsStorage__blobServiceUri": "https://dbotst.blob.core.windows.net/",
    "AzureWebJobsStorage__tableServiceUri": "https://dbotst.table.core.windows.net/",
    "AzureWebJobsStorage__credential": "managedidentity",
    "AZURE_CLIENT_ID": "00000000-0000-0000-0000-000000000001",
    "AzureWebJobsStorage__clientId": "00000000-0000-0000-0000-000000000001",
    "AZURE_APPCONFIG_ENDPOINT": "https://dbot-flags.azconfig.io",
    "HONEYCOMB_API_ENDPOINT": "https://api.honeycomb.io",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
                                             "IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/",
    "DISCORD_PUBLIC_KEY": "ab" * 32,
    "LISTENER_HEALTH_HOST": "0.0.0.0",
    "LISTENER_HEALTH_PORT": "8080",
    "DISCORD_SHARD_COUNT": "2",
    "DISCORD_SHARD_IDS": "0-1",
    "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.500",
    "SERVICE_VERSION": "abc123",
    "DEPLOYMENT_ENVIRONMENT": "prod",
    "OTEL_SERVICE_NAME": "discord-bot",
}


def walk(tree: Any) -> Iterator[Any]:
    yield tree
    if isinstance(tree, dict):
        for value in tree.values():
            yield from walk(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from walk(value)


def env_names(*trees: Any) -> set[str]:
    """Setting names in Bicep objects: the keys of settings objects, the names of env entries."""
    names: set[str] = set()
    for tree in trees:
        for node in walk(tree):
            if isinstance(node, dict):
                names |= {k for k in node if ENV_NAME.match(k)}
                if isinstance(node.get("name"), str) and ({"value", "secretRef"} & set(node)):
                    names.add(node["name"])
    return {n for n in names if ENV_NAME.match(n)}


def variables(tree: dict[str, Any], *names: str) -> list[Any]:
    return [tree["variables"][n]["value"] for n in names]


@pytest.fixture(scope="module")
def function_app_settings(bicep: dict[str, Any]) -> dict[str, Any]:
    main, app = bicep["main.bicep"], bicep["modules/functionapp.bicep"]
    common = variables(main, "baseSettings", "appConfigSettings")
    own = variables(app, "requiredSecrets", "honeycombSecret", "ownSettings")
    return {"names": env_names(*common, *own), "secrets": variables(app, "requiredSecrets", "honeycombSecret")}


@pytest.fixture(scope="module")
def listener_settings(bicep: dict[str, Any]) -> dict[str, Any]:
    main, listener = bicep["main.bicep"], bicep["modules/listener.bicep"]
    common = variables(main, "baseSettings", "appConfigSettings")
    own = variables(listener, "requiredSecrets", "honeycombSecret", "ownSettings")
    return {"names": env_names(*common, *own, listener["resources"]), "tree": listener}


def test_commands_json_is_the_registry() -> None:
    doc = json.loads((INFRA / "commands.json").read_text())
    assert doc["commands"] == list(COMMANDS), "update infra/commands.json to the registry's commands"
    assert doc["queues"] == list(NON_COMMAND_QUEUES), "update infra/commands.json's queues to NON_COMMAND_QUEUES"


def test_every_command_has_its_queue_and_poison_queue(bicep: dict[str, Any]) -> None:
    main = bicep["main.bicep"]
    commands = json.loads((INFRA / "commands.json").read_text())["commands"]
    queues: set[str] = set()
    for var in ("workQueues", "poisonQueues"):
        loop = main["variables"][var]["value"]
        assert loop["loop_type"]["detail"]["array_name"] == "commands"
        item = loop["loop_type"]["detail"]["item_name"]
        queues |= {loop["config"].replace(f"${{{item}}}", c) for c in commands}
    assert "loadJsonContent('commands.json').commands" in (INFRA / "main.bicep").read_text()
    extra = main["variables"]["extraPoisonQueues"]["value"]
    assert extra["loop_type"]["detail"]["array_name"] == "extraQueues"
    queues |= set(NON_COMMAND_QUEUES)
    queues |= {extra["config"].replace(f"${{{extra['loop_type']['detail']['item_name']}}}", q)
               for q in NON_COMMAND_QUEUES}
    assert "loadJsonContent('commands.json').queues" in (INFRA / "main.bicep").read_text()
    names = [s.queue for s in COMMANDS.values()] + list(NON_COMMAND_QUEUES)
    expected = set(names) | {poison_queue_name(q) for q in names}
    assert queues == expected
    storage = bicep["modules/storage.bicep"]["resources"]
    queue_type = "Microsoft.Storage/storageAccounts/queueServices/queues"
    queue_resources = [r for r in storage.values() if r["type"] == queue_type]
    assert [r["config"]["loop_type"]["detail"]["array_name"] for r in queue_resources] == ["queueNames"]


def test_tables_are_the_registry_s(bicep: dict[str, Any]) -> None:
    """modules/reminders.bicep creates exactly the tables the code uses (Azurite creates them on first use)."""
    module = bicep["modules/reminders.bicep"]
    table_type = "Microsoft.Storage/storageAccounts/tableServices/tables"
    names = {module["parameters"][r["config"]["name"]]["default"]
             for r in module["resources"].values() if r["type"] == table_type}
    assert names == {REMINDERS_TABLE, COMMAND_RUNS_TABLE}


def _required_at_startup(iac: set[str], tmp_path: Path, *, listener: bool = False) -> set[str]:
    """Ask the code: start from nothing, add each setting its start-up check names, until it starts."""
    env: dict[str, str] = {}
    required: set[str] = set()
    for _ in range(30):
        try:
            load_settings(env, root=tmp_path)
            if listener:
                load_listener_settings(env, root=tmp_path)
            return required
        except SettingsError as exc:
            name = str(exc).split(":", 1)[0]
            name = IDENTITY_FORM.get(name, name) if name not in iac else name
            assert name in iac, f"the code requires {name} at start-up; the IaC does not set it"
            assert name not in env, f"{name}: the IaC's kind of value is refused: {exc}"
            required.add(name)
            env[name] = FAKES.get(name, "x")
    raise AssertionError("start-up settings did not converge")


def test_function_app_gets_every_setting_the_code_requires(function_app_settings: dict[str, Any],
                                                           tmp_path: Path) -> None:
    names = function_app_settings["names"]
    assert "AzureWebJobsStorage__queueServiceUri" in _required_at_startup(names, tmp_path)
    # The whole IaC environment starts, identity-based and with every secret present.
    settings = load_settings({n: FAKES.get(n, "x") for n in names}, root=tmp_path)
    assert settings.storage.connection_string is None and settings.storage.queue_service_uri
    assert settings.discord_token is not None and settings.appinsights_connection_string is not None
    assert {"DISCORD_TOKEN", "APPLICATIONINSIGHTS_CONNECTION_STRING", "AZURE_CLIENT_ID",
            "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId",
            "AzureFunctionsJobHost__extensions__queues__maxPollingInterval", "DISCORD_PUBLIC_KEY"} <= names


def test_listener_gets_every_setting_the_code_requires(listener_settings: dict[str, Any], tmp_path: Path) -> None:
    names = listener_settings["names"]
    _required_at_startup(names, tmp_path, listener=True)
    assert "DISCORD_TOKEN" in names  # python -m gateway_listener refuses to start without it
    env = {n: FAKES.get(n, "x") for n in names}
    settings = load_settings(env, root=tmp_path)
    assert settings.storage.queue_service_uri and settings.storage.connection_string is None
    own = load_listener_settings(env, root=tmp_path)
    # The probes need the health server, reachable from outside the container.
    assert own.health_port == 8080 and own.health_host == "0.0.0.0"
    assert own.shards.count == 2 and own.shards.ids == (0, 1)
    assert {"AZURE_CLIENT_ID", "DISCORD_SHARD_COUNT", "DISCORD_SHARD_IDS", "LISTENER_HEALTH_PORT",
            "LISTENER_HEALTH_HOST"} <= names


def test_secrets_are_references_never_plain_settings(function_app_settings: dict[str, Any],
                                                     listener_settings: dict[str, Any]) -> None:
    refs: dict[str, Any] = {}
    for tree in function_app_settings["secrets"]:
        for node in walk(tree):
            if isinstance(node, dict):
                refs.update({k: v for k, v in node.items() if k in SECRETS})
    assert set(refs) == SECRETS
    assert all(isinstance(v, str) and KV_REFERENCE.match(v) for v in refs.values()), refs
    listener = listener_settings["tree"]
    entries = [n for n in walk(listener["resources"]) if isinstance(n, dict) and n.get("name") in SECRETS]
    assert set(variables(listener, "secretEnv")[0]["config"]) == {"name", "secretRef"}
    assert all("value" not in e for e in entries)
    kv_secrets = variables(listener, "secrets")[0]["config"]
    assert set(kv_secrets) == {"name", "keyVaultUrl", "identity"}
    text = "\n".join(p.read_text() for p in INFRA.rglob("*.bicep"))
    assert "AccountKey" not in text and "listKeys()" not in text.replace("workspace.listKeys()", "")
    assert not re.search(r"@secure\(\)\s*(?:@description\([^)]*\)\s*)?param \w+ string = '[^']+'", text)


def _always_ready_entries(bicep: dict[str, Any]) -> list[dict[str, Any]]:
    entries = list(bicep["main.bicep"]["parameters"]["alwaysReady"]["default"] or [])
    example = json.loads((INFRA / "main.parameters.example.json").read_text())["parameters"]
    entries += example["alwaysReady"]["value"]
    return entries


PROBE = """
import json, sys
import function_app
names = [f.get_function_name() for f in function_app.app.get_functions()]
files = sorted({f for m in list(sys.modules.values()) if (f := getattr(m, "__file__", None))})
print(json.dumps({"functions": names, "modules": sorted({m.split(".")[0] for m in sys.modules}), "files": files}))
"""


def _probe(code: str, tmp_path: Path) -> dict[str, Any]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
           "AzureWebJobsStorage": "UseDevelopmentStorage=true", "LOCAL_TRACE_FILE": str(tmp_path / "t.jsonl")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def function_app_probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _probe(PROBE, tmp_path_factory.mktemp("probe"))


def test_always_ready_names_are_real_functions(bicep: dict[str, Any], function_app_probe: dict[str, Any]) -> None:
    functions = set(function_app_probe["functions"])
    entries = _always_ready_entries(bicep)
    assert entries, "the example parameters show always-ready entries"
    for entry in entries:
        name = entry["name"]
        assert name in ("http", "blob", "durable") or (
            name.startswith("function:") and name.removeprefix("function:") in functions
        ), f"always-ready {name!r}: not a function of function_app.py ({sorted(functions)})"
        assert isinstance(entry["instanceCount"], int) and entry["instanceCount"] >= 1


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line} is not pinned"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_shared_packages_have_one_version() -> None:
    functions, listener = _pins(ROOT / "requirements.txt"), _pins(ROOT / "requirements-listener.txt")
    shared = set(functions) & set(listener)
    assert {"azure-storage-queue", "opentelemetry-sdk"} <= shared
    assert {n: (functions[n], listener[n]) for n in shared if functions[n] != listener[n]} == {}
    dev = (ROOT / "requirements-dev.txt").read_text().splitlines()
    assert "-r requirements.txt" in dev and "-r requirements-listener.txt" in dev


def _closure(requirements: Path) -> set[str]:
    todo = list(_pins(requirements))
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue  # a dependency whose marker leaves it out on this Python (e.g. async-timeout)
        seen.add(name)
        for req in requires:
            if "extra ==" not in req:
                todo.append(re.sub(r"[-_.]+", "-", re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0]).lower())
    return seen


def _distributions(files: Iterable[str]) -> set[str]:
    """The installed distributions that own these module files (namespace packages like azure.* need files)."""
    owner: dict[str, str] = {}
    for dist in md.distributions():
        for f in dist.files or []:
            if f.suffix in (".py", ".so"):
                name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
                owner[str(Path(str(dist.locate_file(f))).resolve())] = name
    # setuptools' start-up hook is in every venv; the code does not import it.
    return {owner[p] for f in files if (p := str(Path(f).resolve())) in owner} - {"setuptools"}


def test_function_package_needs_only_requirements_txt(function_app_probe: dict[str, Any]) -> None:
    modules = set(function_app_probe["modules"])
    assert not {"discord", "aiohttp", "gateway_listener", "localdev", "ops"} & modules
    missing = _distributions(function_app_probe["files"]) - _closure(ROOT / "requirements.txt")
    assert missing == set(), f"function_app.py imports packages requirements.txt does not bring: {missing}"
    assert not {"discord-py", "aiohttp"} & set(_pins(ROOT / "requirements.txt"))


LISTENER_PROBE = """
import importlib, json, pkgutil, sys
import gateway_listener
for m in pkgutil.iter_modules(gateway_listener.__path__):
    importlib.import_module(f"gateway_listener.{m.name}")
# What the listener loads lazily in Azure: identity-based queues and the configured exporters.
for lazy in ("azure.identity.aio", "azure.storage.queue.aio", "azure.monitor.opentelemetry.exporter",
             "opentelemetry.exporter.otlp.proto.http.trace_exporter", "opentelemetry.instrumentation.requests"):
    importlib.import_module(lazy)
files = sorted({f for m in list(sys.modules.values()) if (f := getattr(m, "__file__", None))})
print(json.dumps({"modules": sorted({m.split(".")[0] for m in sys.modules}), "files": files}))
"""


def test_listener_image_has_what_the_listener_imports(tmp_path: Path) -> None:
    probe = _probe(LISTENER_PROBE, tmp_path)
    modules = set(probe["modules"])
    # PyNaCl is the function app's (interactions signatures); discord.py imports it for voice only
    # when it is installed (try/except in discord/voice_client.py), and the listener has no voice.
    missing = _distributions(probe["files"]) - _closure(ROOT / "requirements-listener.txt") - {"pynacl"}
    assert missing == set(), f"the listener imports packages requirements-listener.txt does not bring: {missing}"
    assert not {"function_app", "command_functions", "localdev"} & modules
    assert not [f for f in probe["files"] if "/azure/functions/" in f]
    project = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    copied = set(re.findall(r"^COPY (\w+)/ ", (ROOT / "Dockerfile").read_text(), re.M))
    assert modules & project <= copied == {"shared", "gateway_listener"}
    assert "azure-functions" not in _pins(ROOT / "requirements-listener.txt")


def test_every_parameter_is_described_and_no_secret_has_a_default(bicep: dict[str, Any]) -> None:
    for path, tree in bicep.items():
        for name, param in tree.get("parameters", {}).items():
            kinds = {d["type"]: d.get("argument") for d in param["decorators"]}
            assert (kinds.get("description") or "").strip(), f"{path}: param {name} has no @description"
            if "secure" in kinds:
                assert param["default"] in (None, ""), f"{path}: secure param {name} has a default value"
    for name in ("discordToken", "honeycombApiKey"):
        assert "secure" in {d["type"] for d in bicep["main.bicep"]["parameters"][name]["decorators"]}


def test_workbook_asks_the_write_ups_questions() -> None:
    workbook = json.loads((INFRA / "monitoring" / "workbook.json").read_text())
    queries = {i["name"]: i["content"]["query"] for i in workbook["items"] if i["type"] == 3}
    assert "percentile(waited_ms, 95)" in queries["p95-by-command"]
    assert "app.end_to_end_ms" in queries["heatmap-by-command"] and "app.command" in queries["heatmap-by-command"]
    assert "faas.coldstart" in queries["cold-starts"] and "cold_start" in queries["cold-starts"]
    assert "success == false" in queries["errors-by-command"]
    assert '"429"' in queries["rate-limits"]


def _resource(bicep: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    config = bicep[path]["resources"][name]["config"]
    return dict(config.get("config", config)) if "loop_type" in config or "condition" in config else dict(config)


def test_the_issue_s_security_and_runtime_requirements(bicep: dict[str, Any]) -> None:
    storage = _resource(bicep, "modules/storage.bicep", "account")["properties"]
    assert storage["allowSharedKeyAccess"] is False and storage["allowBlobPublicAccess"] is False
    assert storage["minimumTlsVersion"] == "TLS1_2"
    vault = _resource(bicep, "modules/keyvault.bicep", "vault")["properties"]
    assert vault["enableRbacAuthorization"] is True
    app = _resource(bicep, "modules/functionapp.bicep", "app")["properties"]
    assert app["functionAppConfig"]["runtime"] == {"name": "python", "version": "3.13"}
    assert app["functionAppConfig"]["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    assert set(app["functionAppConfig"]["scaleAndConcurrency"]) == {"maximumInstanceCount", "instanceMemoryMB",
                                                                    "alwaysReady"}
    plan = _resource(bicep, "modules/functionapp.bicep", "plan")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    listener = _resource(bicep, "modules/listener.bicep", "listeners")["properties"]
    assert "ingress" not in listener["configuration"]
    assert listener["template"]["scale"] == {"minReplicas": 1, "maxReplicas": 1}
    [container] = listener["template"]["containers"]
    probes = {p["type"]: p["httpGet"]["path"] for p in container["probes"]}
    assert probes == {"Startup": "/healthz", "Liveness": "/healthz", "Readiness": "/readyz"}
    assert all(p["httpGet"]["port"] == "healthPort" for p in container["probes"])


def test_polling_interval_defaults_to_host_json(bicep: dict[str, Any]) -> None:
    host = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]["maxPollingInterval"]
    assert bicep["main.bicep"]["parameters"]["queueMaxPollingInterval"]["default"] == host
    example = json.loads((INFRA / "main.parameters.example.json").read_text())["parameters"]
    assert re.fullmatch(r"\d\d:\d\d:\d\d(\.\d{1,3})?", example["queueMaxPollingInterval"]["value"])
