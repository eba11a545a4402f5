"""The request's ``RequestServerVersion`` checked against the server's build, as Exchange checks it.

Exchange serves every schema version up to its own: Exchange 2016 (15.1) answers requests marked
``Exchange2007`` ... ``Exchange2016`` and the dated ``V2015_10_05`` ... ones. A version newer than
the build, or a name that is no schema version at all (``Exchange2015_SP1``, ``Exchange2019``,
``Exchange2007_SP2``: product names, not schema names), is refused with the SOAP fault
``ErrorInvalidServerVersion`` "The specified server version is invalid." (seen from Exchange 2010
and Exchange Online; php-ews#346, mhewedy/ews#12). exchangelib reads that fault as "try an older
version", which is how its version guessing finds a server's version. Requests without the header
are served as the oldest version, as the Exchange 2007 documentation says.
"""

from __future__ import annotations

from lxml import etree

from ews_sim.responses import Build
from ews_sim.xmlutil import tq

# Schema version -> the oldest build that serves it (major, minor, build).
SCHEMA_VERSIONS: dict[str, tuple[int, int, int]] = {
    "Exchange2007": (8, 0, 0),
    "Exchange2007_SP1": (8, 1, 0),
    "Exchange2009": (14, 0, 0),
    "Exchange2010": (14, 0, 0),
    "Exchange2010_SP1": (14, 1, 0),
    "Exchange2010_SP2": (14, 2, 0),
    "Exchange2012": (15, 0, 0),
    "Exchange2013": (15, 0, 0),
    "Exchange2013_SP1": (15, 0, 847),
    "Exchange2015": (15, 1, 0),
    "Exchange2016": (15, 1, 0),
    "V2015_10_05": (15, 1, 0),
    "V2016_01_06": (15, 1, 0),
    "V2016_04_13": (15, 1, 0),
    "V2016_07_13": (15, 1, 0),
    "V2016_10_10": (15, 1, 0),
}
OLDEST = "Exchange2007"
INVALID_TEXT = "The specified server version is invalid."


def requested(header: etree._Element | None) -> str:
    """The version the request asks for; the oldest one when it names none."""
    elem = header.find(tq("RequestServerVersion")) if header is not None else None
    if elem is None:
        return OLDEST
    return elem.get("Version", OLDEST)


def served(version: str, build: Build) -> bool:
    """Whether a server of ``build`` answers requests of schema ``version``."""
    oldest_build = SCHEMA_VERSIONS.get(version)
    return oldest_build is not None and (build.major, build.minor, build.build) >= oldest_build
