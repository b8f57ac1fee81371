"""Camera source URLs: the schemes we accept and how credentials are hidden."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SCHEMES = frozenset({"rtsp", "rtsps", "http", "https", "file", "device"})
_SECRET_PARAMS = ("pass", "pwd", "token", "key", "secret", "auth", "sig")
MASK = "***"


def validate_source_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        allowed = ", ".join(sorted(SCHEMES))
        raise ValueError(f"unsupported scheme {parts.scheme or '(none)'!r}; use one of {allowed}")
    if parts.scheme.lower() in {"rtsp", "rtsps", "http", "https"} and not parts.hostname:
        raise ValueError("the URL has no host")
    if parts.scheme.lower() in {"file", "device"} and not (parts.path or parts.netloc):
        raise ValueError("the URL has no path")
    return url


def mask_source_url(url: str) -> str:
    """The URL with its password and secret-looking query values replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None and "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        masked = [(k, MASK if any(s in k.lower() for s in _SECRET_PARAMS) else v) for k, v in pairs]
        query = urlencode(masked, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
