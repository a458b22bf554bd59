"""The CLI's HTTP client for the Countersign API, and its one-line errors."""

from __future__ import annotations

from typing import Any

import httpx


class CliError(Exception):
    """A failure to report as one line and exit code 1."""


class ApiClient:
    """A thin synchronous client for the Countersign API.

    Args:
        base_url: The API's root URL.
        credential: An API key or JWT, or ``None`` (development mode).
        timeout: Seconds per request; deciding waits for the run to settle.
    """

    def __init__(self, base_url: str, credential: str | None, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> Any:
        """Send a request and return the decoded JSON body.

        Raises:
            CliError: When the API cannot be reached or answers with an error.
        """
        try:
            response = self._http.request(method, path, params=params, json=json_body)
        except httpx.ConnectError as exc:
            raise CliError(
                f"cannot reach the Countersign API at {self.base_url} ({_reason(exc)}); "
                "is it running? Start it with `make up`, or set --api-url / COUNTERSIGN_API_URL"
            ) from None
        except httpx.TimeoutException:
            raise CliError(f"the API at {self.base_url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise CliError(f"request to {self.base_url} failed: {_reason(exc)}") from None
        if response.is_error:
            raise CliError(_error_line(response))
        try:
            return response.json()
        except ValueError:
            raise CliError(
                f"the API answered {response.status_code} with a body that is not JSON"
            ) from None


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    return text or type(exc).__name__


def _error_line(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        code = body.get("code")
        text = f"{response.status_code} {code}: {body['detail']}" if code else str(body["detail"])
    else:
        text = f"{response.status_code} {response.reason_phrase}"
    if response.status_code == 401:
        text += " (pass --api-key or set COUNTERSIGN_API_KEY)"
    return text
