"""A source's HTTP endpoint, resolved from its contract and the environment at run time.

Values written as ``{env: NAME, default: ...}`` in the contract are read here, when a run
starts, from the environment mapping the runner passes in (never at import time). The auth
token is the only secret: it goes into the request headers and nowhere else; :attr:`Endpoint.public_headers`
is what logs and bronze metadata may show.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urljoin

from lakehouse_common.contracts import FromEnv, HttpFileSpec, ParamValue, RestJsonSpec, Text
from lakehouse_ingestor.exceptions import IngestConfigError

_HTTP_URL = re.compile(r"^https?://[^/\s]+(/\S*)?$")


def resolve_text(value: Text, environ: Mapping[str, str], what: str) -> str:
    """A contract value: the literal, or the environment variable (an empty one counts as unset), or its default."""
    if isinstance(value, FromEnv):
        found = environ.get(value.env, "")
        if found != "":
            return found
        if value.default is not None:
            return value.default
        raise IngestConfigError(f"{what}: set the environment variable {value.env} (the contract gives no default)")
    return value


def resolve_params(params: Mapping[str, ParamValue], environ: Mapping[str, str], what: str) -> list[tuple[str, str]]:
    """Query parameters as (name, text) pairs: lists repeat the name, booleans are true/false,
    and parameters that resolve to an empty string are left out."""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        if isinstance(value, tuple):
            pairs.extend((name, str(item)) for item in value)
        elif isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        elif isinstance(value, FromEnv):
            text = resolve_text(value, environ, f"{what}.{name}")
            if text != "":
                pairs.append((name, text))
        elif value != "":
            pairs.append((name, str(value)))
    return pairs


@dataclass(frozen=True)
class Endpoint:
    """Where and how to ask: base URL, path, query, headers, and the secret header apart."""

    base_url: str
    path: str
    params: tuple[tuple[str, str], ...]
    public_headers: Mapping[str, str]
    secret_headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def url(self) -> str:
        return self.join(self.path)

    def join(self, path: str) -> str:
        """``path`` under the base URL (a base with a path prefix keeps it)."""
        if re.match(r"^https?://", path):
            return path
        return urljoin(self.base_url.rstrip("/") + "/", path.lstrip("/"))

    def detail_url(self, template: str, item_id: str) -> str:
        return self.join(template.replace("{id}", quote(item_id, safe="")))

    @property
    def headers(self) -> dict[str, str]:
        """Every header to send (the secret one included): for the HTTP session only."""
        return {**self.public_headers, **self.secret_headers}


def resolve_endpoint(source: str, spec: RestJsonSpec | HttpFileSpec, environ: Mapping[str, str]) -> Endpoint:
    what = f"source {source}: ingest"
    base_url = resolve_text(spec.base_url, environ, f"{what}.base_url").strip()
    if not _HTTP_URL.match(base_url):
        raise IngestConfigError(
            f"{what}.base_url resolved to {base_url!r}; it must look like https://host[:port][/prefix]"
        )
    headers = {name: resolve_text(value, environ, f"{what}.headers.{name}") for name, value in spec.headers.items()}
    secret: dict[str, str] = {}
    if spec.auth is not None:
        token = environ.get(spec.auth.token_env, "")
        if not token:
            raise IngestConfigError(
                f"{what}.auth: set the environment variable {spec.auth.token_env} to the API token "
                "(it is read at run time and never logged or stored)"
            )
        if spec.auth.type == "bearer":
            secret["Authorization"] = f"Bearer {token}"
        else:
            secret[str(spec.auth.header)] = token
        for name in secret:
            headers.pop(name, None)
    return Endpoint(
        base_url=base_url,
        path=spec.path,
        params=tuple(resolve_params(spec.params, environ, f"{what}.params")),
        public_headers=headers,
        secret_headers=secret,
    )
