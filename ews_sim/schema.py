"""Validation against Microsoft's published EWS schema (messages.xsd, types.xsd).

Strict mode validates every request as Exchange does and refuses an invalid one with
ErrorSchemaValidation; it also validates every response the simulator writes, keeping the
failures for tests to assert on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from ews_sim.xmlutil import SOAP, T


def default_schema_dir() -> Path | None:
    """``DOWNSYNC_EWS_SCHEMA_DIR``, else ``shared/ews-schema`` beside the checkout, if present."""
    configured = os.environ.get("DOWNSYNC_EWS_SCHEMA_DIR")
    candidates = [Path(configured)] if configured else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "ews-schema")
    for path in candidates:
        if (path / "messages.xsd").is_file():
            return path
    return None


@dataclass
class Violation:
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line} column {self.column}: {self.message}"


class EwsSchema:
    def __init__(self, directory: Path) -> None:
        # messages.xsd imports types.xsd, so one schema object validates elements of both namespaces.
        self.schema = etree.XMLSchema(etree.parse(str(directory / "messages.xsd")))

    def _check(self, elem: etree._Element) -> Violation | None:
        if self.schema.validate(elem):
            return None
        error = self.schema.error_log.last_error
        return Violation(error.line, error.column, error.message)

    def validate_envelope(self, root: etree._Element) -> Violation | None:
        """Check the header elements and the operation element of a parsed SOAP envelope."""
        if root.tag != f"{{{SOAP}}}Envelope":
            return Violation(root.sourceline or 1, 0, f"root element is {root.tag}, not a SOAP Envelope")
        header = root.find(f"{{{SOAP}}}Header")
        if header is not None:
            for elem in header:
                if isinstance(elem.tag, str) and etree.QName(elem).namespace == T:
                    problem = self._check(elem)
                    if problem:
                        return problem
        body = root.find(f"{{{SOAP}}}Body")
        if body is None:
            return Violation(root.sourceline or 1, 0, "the SOAP Envelope has no Body")
        payload = [c for c in body if isinstance(c.tag, str)]
        if len(payload) != 1:
            return Violation(body.sourceline or 1, 0, "the SOAP Body must hold exactly one element")
        if payload[0].tag == f"{{{SOAP}}}Fault":
            return None
        return self._check(payload[0])
