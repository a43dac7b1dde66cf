"""Safe XML parsing for indexer answers.

defusedxml, not the bare stdlib parser: an indexer is a remote party, and
``xml.etree`` expands internal entities (a "billion laughs" document of a few
kB becomes gigabytes) and will resolve external ones on some builds.
defusedxml refuses DTD entities and external references outright and is
otherwise the same ElementTree API.
"""
from __future__ import annotations

from xml.etree.ElementTree import Element

import defusedxml
import defusedxml.ElementTree as SafeET

from .base import ProviderParseError

__all__ = ["parse_xml", "Element"]


def parse_xml(body: bytes, what: str) -> Element:
    try:
        return SafeET.fromstring(body)
    except defusedxml.DefusedXmlException as exc:
        raise ProviderParseError(f"{what} sent XML with entities or a DTD, refused ({type(exc).__name__})") from None
    except SafeET.ParseError as exc:
        snippet = body[:80].decode("utf-8", "replace").strip()
        raise ProviderParseError(f"{what} sent malformed XML ({exc}): {snippet!r}") from None
