"""Camera source URLs: which ones a worker can open, and how they are shown without secrets.

The control plane refuses at creation any URL that ``parse_source_url`` refuses, so a camera
no worker can open never reaches the fleet. ``mask_source_url`` is the one way a URL is
shown to anyone but the worker that opens it (API responses, logs, errors).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

SourceKind = Literal["rtsp", "http", "file", "device"]
NETWORK_SCHEMES = {"rtsp": "rtsp", "rtsps": "rtsp", "http": "http", "https": "http"}
MASK = "***"

_DEVICE_PATH = re.compile(r"^/dev/")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
# A host (name, IPv4 or bracketed IPv6) with an optional port, ending the authority.
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%-]*)(:\d*)?(?=$|[/?#;])")
# Names of query, fragment and path parameters whose values are secrets.
_SECRET_WORDS = (
    "pass",
    "pwd",
    "token",
    "secret",
    "auth",
    "sig",
    "cred",
    "session",
    "key",
    "ticket",
    "jwt",
)
_SECRET_NAMES = frozenset({"pw", "pin", "code", "p"})


class InvalidSourceUrl(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """How a camera URL is opened: ``target`` is what the capture backend receives."""

    kind: SourceKind
    target: str | int


def parse_source_url(url: str) -> SourceSpec:
    """Map a camera URL to the kind of capture it needs; InvalidSourceUrl if no worker can
    open it."""
    if not url or url != url.strip():
        raise InvalidSourceUrl("the URL is empty or has surrounding whitespace")
    if _DEVICE_PATH.match(url):
        return SourceSpec("device", url)
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError as exc:
        raise InvalidSourceUrl(f"not a valid URL: {mask_source_url(url)}") from exc
    scheme = parts.scheme.lower()
    if scheme in NETWORK_SCHEMES:
        if not hostname:
            raise InvalidSourceUrl(f"the URL has no host: {mask_source_url(url)}")
        kind: SourceKind = "rtsp" if NETWORK_SCHEMES[scheme] == "rtsp" else "http"
        return SourceSpec(kind, url)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InvalidSourceUrl(
                f"a file URL on a remote host cannot be opened: {mask_source_url(url)}"
            )
        path = url2pathname(unquote(parts.path))
        if not path:
            raise InvalidSourceUrl("the file URL has no path")
        return SourceSpec("file", path)
    if scheme == "device":
        name = (parts.netloc + parts.path).strip("/")
        if name.isdigit():
            return SourceSpec("device", int(name))
        if name.startswith("dev/"):
            return SourceSpec("device", "/" + name)
        raise InvalidSourceUrl(
            f"a device URL needs an index (device://0) or a /dev path: {mask_source_url(url)}"
        )
    # A one-letter scheme is a Windows drive letter, i.e. a plain path.
    if scheme == "" or len(scheme) == 1:
        return SourceSpec("file", url)
    allowed = ", ".join(sorted({*NETWORK_SCHEMES, "file", "device"}))
    raise InvalidSourceUrl(
        f"unsupported scheme {parts.scheme!r}; use one of {allowed}, or a file path"
    )


def validate_source_url(url: str) -> str:
    """The URL without surrounding whitespace, if a worker can open it (else
    InvalidSourceUrl, a ValueError, so pydantic reports it as a validation error)."""
    url = url.strip()
    parse_source_url(url)
    return url


def is_secret_name(name: str) -> bool:
    """Whether a parameter of this name (``password``, ``api_key``, ``X-Amz-Signature``,
    ``pw``, ...) holds a secret: the one rule for camera URLs and request paths alike."""
    lowered = unquote(name).strip().lower()
    return lowered in _SECRET_NAMES or any(word in lowered for word in _SECRET_WORDS)


def _mask_params(text: str, separators: str) -> str:
    """``name=value`` pairs with secret-looking names get their value masked; everything
    else is kept exactly as written."""
    pieces = re.split(f"([{re.escape(separators)}])", text)
    out = []
    for piece in pieces:
        name, eq, _ = piece.partition("=")
        out.append(f"{name}={MASK}" if eq and is_secret_name(name) else piece)
    return "".join(out)


def _split_authority(rest: str) -> tuple[str | None, str]:
    """(userinfo, the rest from the host on) of what follows ``scheme://``.

    Passwords are often pasted unencoded, so ``#``, ``?``, ``/`` and ``@`` may appear in
    them, where a standard parser would end the authority early and show the rest of the
    password as a path, query or fragment. So, unless the URL starts with a plain host (no
    port) before any ``@``, everything up to the last ``@`` that is followed by a host is
    userinfo. Doubt masks more, not less.
    """
    if "@" not in rest:
        return None, rest
    plain = _HOST.match(rest)
    if plain is not None and plain.group(2) is None:
        # A host, then an "@" further on: it belongs to the path or the query.
        return None, rest
    at = rest.rfind("@")
    while at >= 0:
        if _HOST.match(rest[at + 1 :]):
            return rest[:at], rest[at + 1 :]
        at = rest.rfind("@", 0, at)
    return None, rest


def mask_source_url(url: str) -> str:
    """The URL with its userinfo (user and password, or a token as the user) and every
    secret-looking path, query and fragment parameter replaced by ``***``.

    The one way a URL is shown to anyone but the worker that opens it; request paths in
    the access log go through it too."""
    match = _SCHEME.match(url)
    if match is None or not url[match.end() :].startswith("//"):
        # A plain path, a device, or a URL without an authority: only parameters can
        # carry secrets.
        return _mask_tail(url)
    head = url[: match.end() + 2]
    userinfo, rest = _split_authority(url[match.end() + 2 :])
    try:
        parts = urlsplit(head + rest)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return head + MASK  # unparseable: nothing after the scheme is shown
    masked = head + (f"{MASK}@" if userinfo is not None else "") + parts.netloc
    return masked + _mask_parts(parts.path, parts.query, parts.fragment)


def _mask_tail(tail: str) -> str:
    parts = urlsplit(tail, allow_fragments=True)
    if parts.scheme or parts.netloc:
        # "C:\\..." (a drive letter read as a scheme) or "//host/...": split by hand.
        path, hash_, fragment = tail.partition("#")
        path, _, query = path.partition("?")
        return _mask_parts(path, query, fragment if hash_ else "")
    return _mask_parts(parts.path, parts.query, parts.fragment)


def _mask_parts(path: str, query: str, fragment: str) -> str:
    """Path parameters (``;password=...``, also ``/token=.../``), the query and a fragment
    of the form ``name=value&...``."""
    out = _mask_params(path, ";/")
    if query:
        out += "?" + _mask_params(query, "&;")
    if fragment:
        out += "#" + _mask_params(fragment, "&;")
    return out
