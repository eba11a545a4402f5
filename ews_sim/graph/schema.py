"""Validation against Microsoft's published Graph CSDL (``v1.0-Prod.csdl``), the Graph twin of ``ews_sim.schema``.

Strict mode refuses a request body that Graph's OData layer would refuse (``400 RequestBodyRead``:
an undeclared property, a wrong JSON type, an unknown enum member, a null where the type forbids
it) and checks every response body the simulator writes, keeping the failures for tests.

The CSDL is parsed once per process (lxml, ~0.1 s) and indexed by qualified type name; a type's
properties are read from its element the first time they are needed. Property names in requests
match case-insensitively, as Graph's reader does (its own documentation sends ``"Schedules"`` to
an action that declares ``Schedules`` and ``"schedules"`` alike); responses must use the declared
names. ``event`` is marked ``OpenType`` in the CSDL, yet Graph refuses undeclared event
properties in requests, so the simulator does too (and never writes undeclared ones).
"""

from __future__ import annotations

import functools
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

CSDL_FILE = "v1.0-Prod.csdl"
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
_STRUCTURED = ("EntityType", "ComplexType")

_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^\d{2}:\d{2}(:\d{2}(\.\d{1,12})?)?$")
_DURATION = re.compile(r"^-?P(\d+D)?(T(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")
_INTEGERS = {"Edm.Int16", "Edm.Int32", "Edm.Int64", "Edm.Byte", "Edm.SByte"}
_NUMBERS = {"Edm.Double", "Edm.Single", "Edm.Decimal"}
_ANYTHING = {"Edm.Stream", "Edm.Untyped", "Edm.PrimitiveType"}


def default_graph_schema_dir() -> Path | None:
    """``DOWNSYNC_GRAPH_SCHEMA_DIR``, else ``shared/graph-schema`` beside the checkout, if it holds the CSDL."""
    configured = os.environ.get("DOWNSYNC_GRAPH_SCHEMA_DIR")
    candidates = [Path(configured)] if configured else []
    candidates.append(Path(__file__).resolve().parents[3] / "shared" / "graph-schema")
    for path in candidates:
        if (path / CSDL_FILE).is_file():
            return path
    return None


@dataclass(frozen=True)
class Prop:
    name: str
    type: str  # qualified: Edm.String, microsoft.graph.attendee, Collection(...)
    nullable: bool
    navigation: bool = False


@dataclass
class TypeDef:
    name: str
    kind: str  # EntityType, ComplexType, EnumType
    base: str | None
    own: dict[str, Prop] = field(default_factory=dict)
    members: frozenset[str] = frozenset()
    folded: frozenset[str] = frozenset()  # members, lower-cased
    flags: bool = False


@dataclass
class Problem:
    path: str
    message: str  # as Graph words it for a request

    def __str__(self) -> str:
        return f"{self.path or '(body)'}: {self.message}"


class _Walk:
    """One validation pass; stops at the first problem for requests, collects up to 20 for responses.

    Responses are checked on every request in strict mode, so the common cases (a string, a boolean, a
    null where allowed) are settled inline and the path to a value is only spelled out for a problem."""

    def __init__(self, schema: GraphSchema, request: bool) -> None:
        self.schema = schema
        self.request = request
        self.problems: list[Problem] = []
        self.stack: list[str] = []

    def done(self) -> bool:
        return len(self.problems) >= (1 if self.request else 20)

    def add(self, message: str) -> None:
        self.problems.append(Problem("".join(self.stack).lstrip("."), message))

    def value(self, tref: str, nullable: bool, value: Any, name: str) -> None:
        if self.done():
            return
        if value is None:
            if not nullable:
                self.add(
                    f"A null value was found for the property named '{name}', which has the expected type "
                    f"'{tref}[Nullable=False]'. The expected type does not allow null values."
                )
            return
        kind, target = self.schema.kind(tref)
        if kind == "collection":
            if not isinstance(value, list):
                self.add(_node_message(value, "StartArray"))
                return
            for n, element in enumerate(value):
                self.stack.append(f"[{n}]")
                self.value(target, nullable, element, name)
                self.stack.pop()
        elif kind == "primitive":
            self.primitive(tref, value, name)
        elif kind == "enum":
            self.enum(target, value)
        elif kind == "structured":
            self.structured(target, value)
        else:
            self.add(f"The type '{tref}' is not declared in the schema.")

    def primitive(self, tref: str, value: Any, name: str) -> None:
        if tref in _ANYTHING or tref.startswith("Edm.Geo"):
            return
        if isinstance(value, dict | list):
            node = "StartObject" if isinstance(value, dict) else "StartArray"
            self.add(
                f"An unexpected '{node}' node was found for property named '{name}' when reading from the JSON "
                "reader. A 'PrimitiveValue' node was expected."
            )
            return
        if not _primitive_ok(tref, value, self.request):
            self.add(f"Cannot convert the literal '{_literal(value)}' to the expected type '{tref}'.")

    def enum(self, typedef: TypeDef, value: Any) -> None:
        if not isinstance(value, str):
            self.add(f"Cannot convert the literal '{_literal(value)}' to the expected type '{typedef.name}'.")
            return
        names = [v.strip() for v in value.split(",")] if typedef.flags else [value]
        for member in names:
            # Graph reads enum members case-insensitively; it writes them as declared.
            if member in typedef.members or (self.request and member.lower() in typedef.folded):
                continue
            self.add(f"Requested value '{member}' was not found.")
            return

    def structured(self, typedef: TypeDef, value: Any) -> None:
        if not isinstance(value, dict):
            node = "StartArray" if isinstance(value, list) else "PrimitiveValue"
            self.add(
                f"An unexpected '{node}' node was found when reading from the JSON reader. A 'StartObject' "
                "node was expected."
            )
            return
        declared = value.get("@odata.type")
        if isinstance(declared, str):
            derived = self.schema.type(declared.lstrip("#"))
            if derived is not None and self.schema.derives_from(derived.name, typedef.name):
                typedef = derived
        props = self.schema.properties(typedef.name)
        folded = self.schema.properties_folded(typedef.name) if self.request else {}
        for key, element in value.items():
            if "@" in key:
                continue  # instance annotations (@odata.etag, @odata.type, property@odata.nextLink...)
            prop = props.get(key) or folded.get(key.lower())
            if prop is None:
                self.stack.append("." + key)
                self.add(
                    f"The property '{key}' does not exist on type '{typedef.name}'. Make sure to only use property "
                    "names that are defined by the type or mark the type as open type."
                )
                self.stack.pop()
                if self.done():
                    return
                continue
            tref = prop.type
            if element is None:
                if prop.nullable:
                    continue
            elif tref == "Edm.String":
                if element.__class__ is str:
                    continue
            elif tref == "Edm.Boolean" and element.__class__ is bool:
                continue
            self.stack.append("." + key)
            self.value(tref, prop.nullable, element, key)
            self.stack.pop()
            if self.done():
                return


def _node_message(value: Any, wanted: str) -> str:
    node = "StartObject" if isinstance(value, dict) else "StartArray" if isinstance(value, list) else "PrimitiveValue"
    return f"An unexpected '{node}' node was found when reading from the JSON reader. A '{wanted}' node was expected."


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _primitive_ok(tref: str, value: Any, request: bool) -> bool:
    if tref == "Edm.String":
        return isinstance(value, str)
    if tref == "Edm.Boolean":
        return isinstance(value, bool)
    if tref in _INTEGERS:
        if isinstance(value, int) and not isinstance(value, bool):
            return True
        # Graph's reader takes integers written as JSON strings ("availabilityViewInterval": "15" in its docs).
        return request and isinstance(value, str) and value.strip().lstrip("-").isdigit()
    if tref in _NUMBERS:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return True
        return isinstance(value, str) and value in ("NaN", "INF", "-INF")
    if not isinstance(value, str):
        return False
    if tref == "Edm.DateTimeOffset":
        return bool(_DATETIME.match(value))
    if tref == "Edm.Date":
        return bool(_DATE.match(value))
    if tref == "Edm.TimeOfDay":
        return bool(_TIME.match(value))
    if tref == "Edm.Duration":
        return bool(_DURATION.match(value))
    if tref == "Edm.Guid":
        try:
            uuid.UUID(value)
        except ValueError:
            return False
        return True
    return True  # Edm.Binary and the rest are strings


class GraphSchema:
    """The Graph v1.0 CSDL, indexed; build it with ``GraphSchema.load(directory)`` (parsed once per process)."""

    def __init__(self, path: Path) -> None:
        root = etree.parse(str(path)).getroot()
        self._aliases: dict[str, str] = {}
        self._elements: dict[str, etree._Element] = {}
        self._actions: dict[str, list[etree._Element]] = {}
        for schema in root.iter(EDM + "Schema"):
            namespace = schema.get("Namespace", "")
            if schema.get("Alias"):
                self._aliases[schema.get("Alias", "")] = namespace
            for elem in schema:
                tag = elem.tag if isinstance(elem.tag, str) else ""
                if tag in (EDM + "EntityType", EDM + "ComplexType", EDM + "EnumType"):
                    self._elements[f"{namespace}.{elem.get('Name')}"] = elem
                elif tag == EDM + "Action":
                    self._actions.setdefault(elem.get("Name", ""), []).append(elem)
        self._types: dict[str, TypeDef | None] = {}
        self._props: dict[str, dict[str, Prop]] = {}
        self._folded: dict[str, dict[str, Prop]] = {}
        self._qualified: dict[str, str] = {}
        self._kinds: dict[str, tuple[str, Any]] = {}

    @classmethod
    def load(cls, directory: Path) -> GraphSchema:
        return _load(str((directory / CSDL_FILE).resolve()))

    # --- the type index ------------------------------------------------------------------------------

    def qualify(self, tref: str) -> str:
        found = self._qualified.get(tref)
        if found is None:
            if tref.startswith("Collection("):
                found = f"Collection({self.qualify(tref[len('Collection(') : -1])})"
            elif tref.startswith("Edm."):
                found = tref
            else:
                prefix, _, name = tref.rpartition(".")
                found = f"{self._aliases.get(prefix, prefix)}.{name}"
            self._qualified[tref] = found
        return found

    def kind(self, tref: str) -> tuple[str, Any]:
        """How to check a value of ``tref``: ("collection", element type), ("primitive", None), ("enum", TypeDef),
        ("structured", TypeDef) or ("unknown", None)."""
        found = self._kinds.get(tref)
        if found is None:
            if tref.startswith("Collection("):
                found = ("collection", self.qualify(tref[len("Collection(") : -1]))
            elif tref.startswith("Edm."):
                found = ("primitive", None)
            else:
                typedef = self.type(tref)
                if typedef is None:
                    found = ("unknown", None)
                else:
                    found = ("enum" if typedef.kind == "EnumType" else "structured", typedef)
            self._kinds[tref] = found
        return found

    def type(self, tref: str) -> TypeDef | None:
        name = self.qualify(tref)
        if name in self._types:
            return self._types[name]
        elem = self._elements.get(name)
        typedef = None
        if elem is not None:
            kind = etree.QName(elem).localname
            base = elem.get("BaseType")
            typedef = TypeDef(name=name, kind=kind, base=self.qualify(base) if base else None)
            if kind == "EnumType":
                typedef.members = frozenset(m.get("Name", "") for m in elem.iter(EDM + "Member"))
                typedef.folded = frozenset(m.lower() for m in typedef.members)
                typedef.flags = elem.get("IsFlags") == "true"
            else:
                for prop in elem:
                    tag = prop.tag if isinstance(prop.tag, str) else ""
                    if tag in (EDM + "Property", EDM + "NavigationProperty"):
                        typedef.own[prop.get("Name", "")] = Prop(
                            name=prop.get("Name", ""),
                            type=self.qualify(prop.get("Type", "Edm.String")),
                            nullable=prop.get("Nullable") != "false",
                            navigation=tag == EDM + "NavigationProperty",
                        )
        self._types[name] = typedef
        return typedef

    def properties(self, tref: str) -> dict[str, Prop]:
        """Every property of a structured type, its base types' included."""
        name = self.qualify(tref)
        found = self._props.get(name)
        if found is None:
            typedef = self.type(name)
            found = {}
            if typedef is not None:
                if typedef.base:
                    found.update(self.properties(typedef.base))
                found.update(typedef.own)
            self._props[name] = found
        return found

    def properties_folded(self, tref: str) -> dict[str, Prop]:
        name = self.qualify(tref)
        found = self._folded.get(name)
        if found is None:
            found = {k.lower(): v for k, v in self.properties(name).items()}
            self._folded[name] = found
        return found

    def derives_from(self, name: str, base: str) -> bool:
        current: str | None = self.qualify(name)
        base = self.qualify(base)
        while current is not None:
            if current == base:
                return True
            typedef = self.type(current)
            current = typedef.base if typedef else None
        return False

    def action_parameters(self, action: str, binding: str) -> dict[str, Prop]:
        """The parameters (binding parameter excluded) of ``action`` bound to ``binding``, by lower-cased name."""
        binding = self.qualify(binding)
        for elem in self._actions.get(action, []):
            params = list(elem.iter(EDM + "Parameter"))
            if params and self.qualify(params[0].get("Type", "")) == binding:
                return {
                    p.get("Name", "").lower(): Prop(
                        p.get("Name", ""), self.qualify(p.get("Type", "Edm.String")), p.get("Nullable") != "false"
                    )
                    for p in params[1:]
                }
        raise KeyError(f"no action {action} bound to {binding}")

    # --- validation ----------------------------------------------------------------------------------

    def check_request(self, tref: str, body: Any) -> Problem | None:
        """The first reason Graph would refuse this request body as ``tref`` (a RequestBodyRead), or None."""
        walk = _Walk(self, request=True)
        walk.value(self.qualify(tref), True, body, "")
        return walk.problems[0] if walk.problems else None

    def check_parameters(self, action: str, binding: str, body: Any) -> Problem | None:
        if not isinstance(body, dict):
            return Problem("", _node_message(body, "StartObject"))
        params = self.action_parameters(action, binding)
        walk = _Walk(self, request=True)
        for key, value in body.items():
            if "@" in key:
                continue
            prop = params.get(key.lower())
            if prop is None:
                return Problem(
                    key,
                    f"The parameter '{key}' in the request payload is not a valid parameter for the operation "
                    f"'{action}'.",
                )
            walk.stack = ["." + key]
            walk.value(prop.type, prop.nullable, value, key)
            if walk.problems:
                return walk.problems[0]
        return None

    def check_response(self, tref: str, body: Any) -> list[Problem]:
        """Every way (up to 20) this response body breaks the schema. ``tref`` is the payload's type; a collection
        is checked as an object whose ``value`` holds the items and whose other members are annotations."""
        walk = _Walk(self, request=False)
        tref = self.qualify(tref)
        if tref.startswith("Collection("):
            if not isinstance(body, dict) or "value" not in body:
                return [Problem("", "a collection response must be an object with a value member")]
            for key in body:
                if key != "value" and "@" not in key:
                    walk.add(f"unexpected member '{key}' beside value")
            walk.stack = ["value"]
            walk.value(tref, False, body["value"], "value")
        else:
            walk.value(tref, False, body, "")
        return walk.problems


@functools.lru_cache(maxsize=4)
def _load(path: str) -> GraphSchema:
    return GraphSchema(Path(path))
