"""Three deliberate changes to exchangelib's behaviour, applied once when downsync talks to Exchange.

1. On ErrorServerBusy exchangelib shrinks its session pool by waiting for a free session while
   holding the pool lock; with several worker threads on one tenant that wait can deadlock. Back-off
   belongs to the Celery task (FailFast), so the pool keeps its size and callers get the error at once.
2. exchangelib parses every response through ``response.iter_content()`` with requests' default
   chunk of one byte: about 30 ms of CPU per 180 KB availability answer, against 1 ms when lxml reads
   the bytes requests has already downloaded. A non-streaming response is parsed from memory.
3. requests reads the proxy, CA bundle and no-proxy variables from the environment again for every
   request it sends (a tenth of the CPU of a placement's two calls). A session talks to one endpoint,
   so they are read once, when exchangelib opens it, with requests' own rules.
"""

from __future__ import annotations

from typing import Any

import requests
from exchangelib.errors import SessionPoolMinSizeReached
from exchangelib.protocol import Protocol
from exchangelib.services.common import EWSService


def _keep_pool_size(self: Protocol) -> None:
    raise SessionPoolMinSizeReached("downsync keeps the session pool size; back-off is the task's job")


class _InMemory:
    """Stands in for a response whose body requests already holds, handing it to lxml in one piece."""

    def __init__(self, content: bytes) -> None:
        self.content = content

    def iter_content(self) -> bytes:
        return self.content


_original_soap_parts = EWSService._get_soap_parts.__func__


def _soap_parts(cls: type[EWSService], response: Any) -> Any:
    content = getattr(response, "_content", None) if isinstance(response, requests.Response) else None
    if isinstance(content, bytes):
        return _original_soap_parts(cls, _InMemory(content))
    return _original_soap_parts(cls, response)


_original_raw_session = Protocol.raw_session.__func__


def _raw_session(cls: type[Protocol], prefix: str, *args: Any, **kwargs: Any) -> requests.Session:
    session = _original_raw_session(cls, prefix, *args, **kwargs)
    if session.trust_env:
        found = session.merge_environment_settings(prefix, {}, None, None, None)
        session.proxies, session.verify, session.cert = found["proxies"], found["verify"], found["cert"]
        # Only the proxy/CA lookups and .netrc depend on this flag; a session always carries its own auth.
        session.trust_env = False
    return session


def apply() -> None:
    Protocol.decrease_poolsize = _keep_pool_size
    EWSService._get_soap_parts = classmethod(_soap_parts)
    Protocol.raw_session = classmethod(_raw_session)
