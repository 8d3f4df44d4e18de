"""A small client of the people's API (archive/people_api.py) for the CLI:
HTTPS checked against the agency CA, a bearer token, JSON or bytes back."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from bodycam.errors import BodycamError


class PeopleAPIError(BodycamError, RuntimeError):
    """The archive answered with an error (status and message) or could not be reached."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"archive: {status} {message}" if status else f"archive: {message}")


class PeopleClient:
    def __init__(self, url: str, ca: Path, token: str | None = None, timeout: float = 600.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
        ctx.check_hostname = False  # the archive's certificate names the archive, not a host; the CA is checked
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.ssl = ctx

    def call(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> bytes:
        url = self.url + path + ("?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
                                 if query else "")
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.ssl) as answer:  # noqa: S310
                return answer.read()
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", exc.reason)
            except ValueError:
                message = str(exc.reason)
            raise PeopleAPIError(exc.code, message) from None
        except (urllib.error.URLError, OSError) as exc:
            raise PeopleAPIError(0, f"{self.url}: {getattr(exc, 'reason', exc)}") from None

    def download(self, method: str, path: str, body: Any, target: Path) -> int:
        """Stream an answer into ``target`` (a new file); returns its size."""
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.ssl) as answer, \
                    open(target, "xb") as out:  # noqa: S310
                size = 0
                while chunk := answer.read(1 << 20):
                    out.write(chunk)
                    size += len(chunk)
                return size
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", exc.reason)
            except ValueError:
                message = str(exc.reason)
            raise PeopleAPIError(exc.code, message) from None
        except (urllib.error.URLError, OSError) as exc:
            raise PeopleAPIError(0, f"{self.url}: {getattr(exc, 'reason', exc)}") from None

    def json(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        return json.loads(self.call(method, path, body, query))
