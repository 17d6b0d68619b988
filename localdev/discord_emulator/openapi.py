"""Request validation against Discord's published OpenAPI description.

The spec (OpenAPI 3.1, JSON Schema 2020-12) is loaded once per process; each
operation's validators (body, path and query parameters) are built once, with a
``referencing`` registry so ``#/components/schemas/...`` references resolve inside
the spec document. Errors come back both as readable strings (for test output) and
as Discord's nested ``Invalid Form Body`` ``errors`` object.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

_log = logging.getLogger(__name__)

SPEC_URI = "urn:discord-openapi"
# Discord's published OpenAPI description, vendored in the project (MIT, see its LICENSE).
SPEC_CANDIDATES = (Path(__file__).resolve().parents[2] / "oracles" / "discord-openapi.json",)
_PARAM = re.compile(r"\{([^}/]+)\}")
_METHODS = ("get", "put", "post", "patch", "delete", "head", "options")

# jsonschema keyword -> the error code Discord uses in Invalid Form Body responses.
_DISCORD_CODES = {
    "maxLength": "BASE_TYPE_MAX_LENGTH",
    "minLength": "BASE_TYPE_MIN_LENGTH",
    "maxItems": "BASE_TYPE_MAX_LENGTH",
    "minItems": "BASE_TYPE_MIN_LENGTH",
    "required": "BASE_TYPE_REQUIRED",
    "type": "BASE_TYPE_BAD_TYPE",
    "enum": "BASE_TYPE_CHOICES",
    "const": "BASE_TYPE_CHOICES",
    "oneOf": "BASE_TYPE_CHOICES",
    "anyOf": "BASE_TYPE_CHOICES",
    "maximum": "NUMBER_TYPE_MAX",
    "minimum": "NUMBER_TYPE_MIN",
    "pattern": "BASE_TYPE_INVALID",
}


def _pointer_escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


@dataclass
class Operation:
    """One method + path template of the spec with its pre-built validators."""

    method: str
    template: str
    operation_id: str
    regex: re.Pattern[str]
    literal_segments: int
    path_params: dict[str, Draft202012Validator] = field(default_factory=dict)
    query_params: dict[str, tuple[Draft202012Validator, dict[str, Any]]] = field(default_factory=dict)
    body: Draft202012Validator | None = None
    body_required: bool = False
    bot_auth: bool = True  # False for routes authenticated by a token in the path


@dataclass
class Validation:
    errors: list[str] = field(default_factory=list)
    discord_errors: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _insert(tree: dict[str, Any], path: list[str], code: str, message: str) -> None:
    node = tree
    for part in path:
        node = node.setdefault(part, {})
    node.setdefault("_errors", []).append({"code": code, "message": message})


class SpecValidator:
    """Finds the operation for a request and validates its parameters and JSON body."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._spec = spec
        resource: Resource[Any] = Resource.from_contents(spec, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
        self._by_segments: dict[int, list[Operation]] = {}
        count = 0
        for template, item in spec.get("paths", {}).items():
            for method in _METHODS:
                if method in item:
                    op = self._build(template, method, item)
                    self._by_segments.setdefault(template.count("/"), []).append(op)
                    count += 1
        for ops in self._by_segments.values():
            # A literal segment ("@me", "@original") beats a parameter in the same place.
            ops.sort(key=lambda o: -o.literal_segments)
        _log.debug("compiled validators for %d operations", count)

    @classmethod
    def from_file(cls, path: Path | None = None) -> SpecValidator:
        if path is None:
            path = next((p for p in SPEC_CANDIDATES if p.is_file()), None)
            if path is None:
                raise FileNotFoundError(
                    "Discord OpenAPI description not found; looked in "
                    + ", ".join(str(p) for p in SPEC_CANDIDATES) + " (pass spec_path=...)"
                )
        return _cached_validator(str(path))

    def _validator(self, pointer: str) -> Draft202012Validator:
        return Draft202012Validator({"$ref": f"{SPEC_URI}#{pointer}"}, registry=self._registry)

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Follow a top-level $ref (to read a parameter's declared type for coercion)."""
        seen = 0
        while "$ref" in schema and seen < 10:
            ref = schema["$ref"]
            resolved = self._registry.resolver(base_uri=SPEC_URI).lookup(ref).contents
            schema = resolved if isinstance(resolved, dict) else {}
            seen += 1
        return schema

    def _build(self, template: str, method: str, item: dict[str, Any]) -> Operation:
        op_doc = item[method]
        base = f"/paths/{_pointer_escape(template)}"
        escaped = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
        regex = re.compile("^" + _PARAM.sub(r"(?P<\1>[^/]+)", escaped) + "$")
        literals = sum(1 for seg in template.split("/") if seg and not _PARAM.fullmatch(seg))
        op = Operation(
            method=method.upper(),
            template=template,
            operation_id=op_doc.get("operationId", ""),
            regex=regex,
            literal_segments=literals,
        )
        # Parameters may be declared on the path item and on the operation (the latter wins).
        for where, params in ((f"{base}/parameters", item.get("parameters", [])),
                              (f"{base}/{method}/parameters", op_doc.get("parameters", []))):
            for i, param in enumerate(params):
                validator = self._validator(f"{where}/{i}/schema")
                if param["in"] == "path":
                    op.path_params[param["name"]] = validator
                elif param["in"] == "query":
                    op.query_params[param["name"]] = (validator, self._resolve(param.get("schema", {})))
        body = op_doc.get("requestBody")
        if body and "application/json" in body.get("content", {}):
            op.body = self._validator(f"{base}/{method}/requestBody/content/application~1json/schema")
            op.body_required = bool(body.get("required"))
        security = op_doc.get("security")
        # An empty requirement ({}) means anonymous access is allowed (token-in-path routes).
        token_in_path = "{webhook_token}" in template or "{interaction_token}" in template
        op.bot_auth = not token_in_path and security is not None and all(s for s in security)
        return op

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation for ``method path`` (path relative to /api/vN), or None."""
        method = method.upper()
        for op in self._by_segments.get(path.count("/"), []):
            if op.method != method:
                continue
            m = op.regex.match(path)
            if m:
                return op, m.groupdict()
        return None

    def template_for_any_method(self, path: str) -> str | None:
        for op in self._by_segments.get(path.count("/"), []):
            if op.regex.match(path):
                return op.template
        return None

    def validate(
        self,
        op: Operation,
        path_params: dict[str, str],
        query: dict[str, str],
        body: Any,
        *,
        has_body: bool,
    ) -> Validation:
        result = Validation()
        for name, value in path_params.items():
            validator = op.path_params.get(name)
            if validator is not None:
                self._collect(result, validator, value, [name], where="path")
        for name, value in query.items():
            entry = op.query_params.get(name)
            if entry is None:
                continue  # Discord ignores unknown query parameters
            validator, declared = entry
            self._collect(result, validator, _coerce(value, declared), [name], where="query")
        if op.body is not None:
            if has_body:
                self._collect(result, op.body, body, [], where="body")
            elif op.body_required:
                result.errors.append("body: required")
                _insert(result.discord_errors, [], "BASE_TYPE_REQUIRED", "This field is required")
        return result

    @staticmethod
    def _collect(
        result: Validation, validator: Draft202012Validator, value: Any, prefix: list[str], where: str
    ) -> None:
        for err in validator.iter_errors(value):
            path = prefix + [str(p) for p in err.absolute_path]
            result.errors.append(f"{where}: {'.'.join(path) or '<root>'}: {_short(err)}")
            _insert(result.discord_errors, path, _DISCORD_CODES.get(str(err.validator), "BASE_TYPE_INVALID"),
                    _short(err))


def _short(err: ValidationError) -> str:
    # Discord's own wording for length errors; jsonschema's repeats the (possibly huge) value.
    if err.validator in ("maxLength", "maxItems"):
        return f"Must be {err.validator_value} or fewer in length."
    if err.validator in ("minLength", "minItems"):
        return f"Must be {err.validator_value} or more in length."
    text = err.message
    return text if len(text) <= 300 else text[:297] + "..."


def _coerce(value: str, schema: dict[str, Any]) -> Any:
    """Query strings are text; turn them into the JSON type the parameter declares."""
    declared = schema.get("type")
    types = declared if isinstance(declared, list) else [declared]
    if "integer" in types and re.fullmatch(r"-?\d+", value):
        return int(value)
    if "number" in types:
        try:
            return float(value)
        except ValueError:
            pass
    # Discord reads 1/0 as booleans in query strings too (discord.py sends with_response=1).
    if "boolean" in types and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    return value


@functools.lru_cache(maxsize=4)
def _cached_validator(path: str) -> SpecValidator:
    # The spec is ~1 MB: parse and compile once per process, shared by every emulator.
    with open(path, encoding="utf-8") as fh:
        return SpecValidator(json.load(fh))
