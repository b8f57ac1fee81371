"""What every API command shares: where the control plane is, which key to use, ``--json``,
and how a failure ends a command (the API's own message, a non-zero exit, no traceback).

A command is written as ``def command(api: Api, ...)`` under ``@api_command``; the decorator
adds ``--api-url``, ``--api-key`` and ``--json`` to it, so no command repeats them.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Concatenate, ParamSpec

import httpx
import typer
from rich.console import Console

P = ParamSpec("P")

# Results go to stdout; progress, notes and errors to stderr, so --json output stays clean.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

REQUEST_TIMEOUT = 30.0
# The first enrollment loads the face models in the control plane.
UPLOAD_TIMEOUT = 120.0
PAGE = 1000


class CommandError(Exception):
    """Ends a command: its message is printed and the exit code is 1."""

    def __init__(self, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.body = body or {"error": "CommandError", "detail": message}


class ApiFailure(CommandError):
    """The API answered with an error; its message is the API's ``detail``."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.name = str(body.get("error", "HTTPError"))
        detail = body.get("detail")
        self.detail = detail if isinstance(detail, str) else json.dumps(detail)
        super().__init__(f"{self.detail} ({self.name}, HTTP {status})", {**body, "status": status})

    @classmethod
    def of(cls, resp: httpx.Response) -> ApiFailure:
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "detail" not in body:
            text = resp.text.strip()[:300] or resp.reason_phrase
            body = {"error": "HTTPError", "detail": text}
        return cls(resp.status_code, body)


def local_api_url() -> str:
    """The local control plane, as `facefleet serve` would bind it (FACEFLEET_HOST/PORT)."""
    from facefleet.api.config import Settings

    settings = Settings()
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def local_admin_key() -> str:
    """The default tenant's admin key from the local data dir's keys file."""
    from facefleet.api.bootstrap import keys_path
    from facefleet.api.config import Settings

    path: Path = keys_path(Settings().data_dir)
    try:
        key = json.loads(path.read_text())["keys"]["admin"]
    except FileNotFoundError:
        raise CommandError(
            f"no API key: pass --api-key, set FACEFLEET_API_KEY, or run where {path} exists"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CommandError(f"cannot read the admin key from {path}: {exc}") from None
    if not isinstance(key, str):
        raise CommandError(f"{path} holds no admin key")
    return key


@dataclass
class Api:
    """One command's connection to the control plane."""

    url: str
    key: str
    json: bool
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=REQUEST_TIMEOUT,
        )

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        files: Any = None,
        timeout: float | None = None,
    ) -> Any:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            resp = self.http.request(
                method,
                path,
                json=json_body,
                params=query,
                files=files,
                timeout=timeout or REQUEST_TIMEOUT,
            )
        except httpx.TimeoutException:
            raise CommandError(f"the control plane at {self.url} did not answer in time") from None
        except httpx.TransportError as exc:
            raise CommandError(f"cannot reach the control plane at {self.url}: {exc}") from None
        if resp.is_error:
            raise ApiFailure.of(resp)
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json_body=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json_body=body)

    def delete(self, path: str) -> None:
        self.request("DELETE", path)

    def upload(self, path: str, photo: Path) -> Any:
        try:
            data = photo.read_bytes()
        except OSError as exc:
            raise CommandError(f"{photo}: {exc.strerror or exc}") from None
        files = [("files", (photo.name, data, "application/octet-stream"))]
        return self.request("POST", path, files=files, timeout=UPLOAD_TIMEOUT)

    def every(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paged list."""
        offset = 0
        while True:
            page = self.get(path, offset=offset, limit=PAGE, **params)
            items: list[dict[str, Any]] = page["items"]
            yield from items
            offset += len(items)
            if not items or offset >= page.get("total", offset):
                return

    @property
    def ws_base(self) -> str:
        scheme, rest = self.url.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}"

    def emit(self, data: Any, render: Callable[[], None]) -> None:
        """The result as JSON with --json, else as ``render`` shows it."""
        if self.json:
            emit_json(data)
        else:
            render()


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def emit_json_line(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()


def fail(error: CommandError, as_json: bool) -> typer.Exit:
    """Print a failure to stderr; the caller raises the returned exit."""
    if as_json:
        sys.stderr.write(json.dumps(error.body) + "\n")
    else:
        err.print(f"[red]error:[/red] {error.message}", markup=True, highlight=False)
    return typer.Exit(1)


def confirmed(question: str, yes: bool) -> None:
    """Ask before a destructive step; without a terminal, only --yes proceeds."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise CommandError(f"{question} Pass --yes to confirm without a prompt.")
    if not typer.confirm(question, default=False, err=True):
        raise CommandError("cancelled")


ApiUrlOption = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        envvar="FACEFLEET_API_URL",
        help="Control plane URL [default: the local one, from FACEFLEET_HOST/FACEFLEET_PORT].",
        show_default=False,
        rich_help_panel="Connection",
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="FACEFLEET_API_KEY",
        help="API key [default: the admin key in the local data dir's default-tenant-keys.json].",
        show_default=False,
        rich_help_panel="Connection",
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print the result as JSON.", rich_help_panel="Output"),
]

_ADDED = (
    inspect.Parameter(
        "api_url", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ApiUrlOption
    ),
    inspect.Parameter(
        "api_key", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ApiKeyOption
    ),
    inspect.Parameter(
        "json_output", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=JsonOption
    ),
)


def api_command(fn: Callable[Concatenate[Api, P], None]) -> Callable[P, None]:
    """Gives a command its connection options and turns every failure into a message and
    exit code 1; Ctrl-C ends a live command quietly (exit 130)."""
    signature = inspect.signature(fn, eval_str=True)
    own = list(signature.parameters.values())[1:]

    @functools.wraps(fn)
    def command(*args: P.args, **kwargs: P.kwargs) -> None:
        api_url = kwargs.pop("api_url", None)
        api_key = kwargs.pop("api_key", None)
        as_json = bool(kwargs.pop("json_output", False))
        try:
            api = Api(
                str(api_url or os.environ.get("FACEFLEET_API_URL") or local_api_url()),
                str(api_key or os.environ.get("FACEFLEET_API_KEY") or local_admin_key()),
                as_json,
            )
            try:
                fn(api, *args, **kwargs)
            finally:
                api.close()
        except CommandError as exc:
            raise fail(exc, as_json) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    command.__signature__ = signature.replace(parameters=[*own, *_ADDED])  # type: ignore[attr-defined]
    return command
