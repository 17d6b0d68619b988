"""A test-side oracle: does a request match Discord's published OpenAPI description?

``oracle().check(method, path, body, headers)`` finds the operation whose path template
matches (literal segments beat parameters, so ``.../messages/@original`` is not read as
``.../messages/{message_id}``), validates path parameters and the JSON body with
JSON Schema 2020-12 (``$ref`` into ``#/components/schemas`` via ``referencing``), and
raises AssertionError listing every problem. Validators are compiled once per operation.

Beyond the schema it reports two things Discord accepts silently but a bot should not
send: body properties the schema does not know (the schemas leave
``additionalProperties`` open, so a typo such as ``allowed_mention`` would pass), and a
missing ``Authorization`` header on an operation whose security requires the bot token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

_HERE = Path(__file__).resolve()
CANDIDATES = (_HERE.parents[2] / "oracles" / "discord-openapi.json",)
URN = "urn:discord-openapi"
_METHODS = ("get", "put", "post", "patch", "delete")

_formats = FormatChecker()


@_formats.checks("snowflake")
def _is_snowflake(value: object) -> bool:
    return not isinstance(value, str) or (value.isascii() and value.isdigit() and int(value) < 2**64)


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    operation_id: str
    pointer: str  # JSON pointer to the operation object
    params: dict[str, str]  # path parameter values, unquoted
    needs_bot_token: bool


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


class OpenApiOracle:
    def __init__(self, spec_path: Path | None = None) -> None:
        path = spec_path or next((p for p in CANDIDATES if p.is_file()), None)
        if path is None:
            raise FileNotFoundError(f"discord-openapi.json not found in {[str(p) for p in CANDIDATES]}")
        self.spec: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        self.base_path = urlsplit(self.spec["servers"][0]["url"]).path.rstrip("/")  # /api/v10
        resource = Resource.from_contents(self.spec, default_specification=DRAFT202012)
        self.registry: Registry = Registry().with_resource(URN, resource)
        self._validators: dict[str, Draft202012Validator] = {}
        # Fewest parameters first, so a literal segment wins over a {param} one.
        self._templates = sorted(
            ((self._compile(t), t) for t in self.spec["paths"]),
            key=lambda item: (item[1].count("{"), -len(item[1])),
        )

    @staticmethod
    def _compile(template: str) -> re.Pattern[str]:
        parts = re.split(r"(\{[^}]+\})", template)
        regex = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
        return re.compile(f"^{regex}$")

    def validator(self, pointer: str) -> Draft202012Validator:
        """A compiled validator for the schema at ``pointer`` (cached)."""
        if pointer not in self._validators:
            self._validators[pointer] = Draft202012Validator(
                {"$ref": f"{URN}#{pointer}"}, registry=self.registry, format_checker=_formats
            )
        return self._validators[pointer]

    def find(self, method: str, path: str) -> Operation:
        """The operation for a request path (with or without the /api/v10 prefix)."""
        path = urlsplit(path).path
        path = re.sub(r"^/api(/v\d+)?(?=/)", "", path) if path.startswith("/api") else path
        for pattern, template in self._templates:
            match = pattern.match(path)
            if match and method.lower() in self.spec["paths"][template]:
                op = self.spec["paths"][template][method.lower()]
                security = op.get("security", self.spec.get("security", [{}]))
                return Operation(
                    method=method.upper(),
                    template=template,
                    operation_id=op.get("operationId", ""),
                    pointer=f"/paths/{_escape(template)}/{method.lower()}",
                    params={k: unquote(v) for k, v in match.groupdict().items()},
                    needs_bot_token=bool(security) and {} not in security,
                )
        raise LookupError(f"no OpenAPI operation for {method.upper()} {path}")

    def errors(
        self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None
    ) -> list[str]:
        """Every way the request departs from the description; [] when it validates."""
        try:
            op = self.find(method, path)
        except LookupError as exc:
            return [str(exc)]
        out: list[str] = []
        path_item = self.spec["paths"][op.template]
        operation = path_item[method.lower()]
        params = {(p["in"], p["name"]): p for p in [*path_item.get("parameters", []), *operation.get("parameters", [])]}
        for name, value in op.params.items():
            ptr = self._param_pointer(op, name)
            if ptr is not None:
                out += [f"path {{{name}}}: {_short(e.message)}" for e in self.validator(ptr).iter_errors(value)]
        for name, _ in parse_qsl(urlsplit(path).query):
            if ("query", name) not in params:
                out.append(f"query parameter {name!r} not in {op.operation_id}")
        content = operation.get("requestBody", {}).get("content", {})
        if body is None:
            if operation.get("requestBody", {}).get("required"):
                out.append(f"{op.operation_id}: a request body is required")
        elif "application/json" not in content:
            out.append(f"{op.operation_id}: takes no JSON body")
        else:
            ptr = f"{op.pointer}/requestBody/content/application~1json/schema"
            validator = self.validator(ptr)
            for err in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
                where = "".join(f"/{p}" for p in err.absolute_path)
                out.append(f"body{where}: {_short(err.message)}")
            out += self._unknown_properties(validator, body)
        if headers is not None and op.needs_bot_token:
            auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
            if not auth.startswith("Bot "):
                out.append(f"{op.operation_id}: requires 'Authorization: Bot <token>'")
        return out

    def check(self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None) -> Operation:
        """Raise AssertionError listing every problem; return the matched operation."""
        problems = self.errors(method, path, body, headers)
        if problems:
            listing = "\n  ".join(problems)
            raise AssertionError(f"{method.upper()} {path} does not match Discord's OpenAPI:\n  {listing}")
        return self.find(method, path)

    def _param_pointer(self, op: Operation, name: str) -> str | None:
        """Where the schema of path parameter ``name`` lives (operation level wins)."""
        path_ptr = f"/paths/{_escape(op.template)}"
        path_item = self.spec["paths"][op.template]
        for ptr, node in ((op.pointer, path_item[op.method.lower()]), (path_ptr, path_item)):
            for i, p in enumerate(node.get("parameters", [])):
                if p.get("in") == "path" and p.get("name") == name and "schema" in p:
                    return f"{ptr}/parameters/{i}/schema"
        return None

    # -- unknown properties: walk the instance alongside its (dereferenced) schema -----------

    def _unknown_properties(self, root: Draft202012Validator, body: Any) -> list[str]:
        resolved = root._resolver.lookup(root.schema["$ref"]) if root._resolver else None
        if resolved is None:
            return []
        return list(self._walk(root, resolved.contents, resolved.resolver, body, "body"))

    def _walk(self, root: Draft202012Validator, schema: Any, resolver: Any, value: Any, where: str) -> Iterator[str]:
        while isinstance(schema, dict) and "$ref" in schema:
            resolved = resolver.lookup(schema["$ref"])
            schema, resolver = resolved.contents, resolved.resolver
        if not isinstance(schema, dict):
            return
        for key in ("oneOf", "anyOf"):
            for branch in schema.get(key, []):
                if root.evolve(schema=branch, _resolver=resolver).is_valid(value):
                    yield from self._walk(root, branch, resolver, value, where)
                    break
        if isinstance(value, list) and "items" in schema:
            for i, item in enumerate(value):
                yield from self._walk(root, schema["items"], resolver, item, f"{where}/{i}")
        if not isinstance(value, dict):
            return
        known: dict[str, tuple[Any, Any]] = {}
        open_ended = "additionalProperties" in schema or "patternProperties" in schema
        for part, part_resolver in [(schema, resolver), *self._all_of(schema, resolver)]:
            known.update({k: (v, part_resolver) for k, v in part.get("properties", {}).items()})
            open_ended |= "additionalProperties" in part or "patternProperties" in part
        for key, item in value.items():
            if key in known:
                yield from self._walk(root, known[key][0], known[key][1], item, f"{where}/{key}")
            elif known and not open_ended:
                yield f"{where}/{key}: property not in Discord's schema (Discord ignores it)"

    def _all_of(self, schema: dict[str, Any], resolver: Any) -> Iterator[tuple[dict[str, Any], Any]]:
        for branch in schema.get("allOf", []):
            while isinstance(branch, dict) and "$ref" in branch:
                resolved = resolver.lookup(branch["$ref"])
                branch, resolver = resolved.contents, resolved.resolver
            if isinstance(branch, dict):
                yield branch, resolver
                yield from self._all_of(branch, resolver)


def _short(message: str, limit: int = 200) -> str:
    """jsonschema messages start with the instance's repr; a 4000-character one hides the point."""
    return message if len(message) <= limit else f"{message[: limit // 2]} … {message[-limit // 2 :]}"


@cache
def oracle() -> OpenApiOracle:
    """One oracle per test session: the description is 1 MB of JSON."""
    return OpenApiOracle()
