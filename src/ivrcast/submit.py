"""The customer side of the CLI: `ivrcast submit` and `ivrcast tasks watch`.

Both speak only the public `/api/yunhu` interface, so they work against any ivrcast
server (or the vendor's). A submission of any size is cut into requests of at most 5000
numbers; each carries a `requestid` so that a retry after a lost answer can never queue
the same numbers twice.
"""

from __future__ import annotations

import csv
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

RETRYABLE_CODES = {500}
"""Envelope codes worth retrying: the server failed, the request may succeed later."""
ILLEGAL_NUMBERS = 1021
"""The vendor's "illegal number": PlayVoice's answer when no number can be called."""


class SubmitError(Exception):
    """The server refused a request; retrying would not help."""


def read_numbers(lines: Iterable[str]) -> Iterator[str]:
    """Numbers from CSV text: the first non-empty cell of each row; a header row (a first
    cell with letters) is skipped."""
    for index, row in enumerate(csv.reader(lines)):
        cell = next((c.strip() for c in row if c.strip()), "")
        if not cell:
            continue
        if index == 0 and any(ch.isalpha() for ch in cell):
            continue
        yield cell


def chunks(numbers: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for number in numbers:
        batch.append(number)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True)
class Client:
    url: str
    appid: str
    accesskey: str
    retries: int = 5
    backoff: float = 1.0
    sleep: Callable[[float], None] = time.sleep

    def call(self, http: httpx.Client, service: str, fields: dict[str, str]) -> dict[str, Any]:
        """POST one service request; transient failures are retried with backoff."""
        form = {"service": service, "appid": self.appid, "accesskey": self.accesskey, **fields}
        for attempt in range(self.retries + 1):
            try:
                response = http.post(self.url, data=form, files={"_": (None, "")})
                if response.status_code < 500:
                    body: dict[str, Any] = response.json()
                    if body.get("code") not in RETRYABLE_CODES:
                        return body
                problem = f"HTTP {response.status_code}"
            except (httpx.TransportError, ValueError) as exc:
                problem = str(exc) or type(exc).__name__
            if attempt == self.retries:
                raise SubmitError(f"{service} failed after {attempt + 1} attempts: {problem}")
            self.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")


def submit_chunk(
    client: Client, http: httpx.Client, numbers: list[str], fields: dict[str, str], request_id: str
) -> dict[str, Any]:
    body = client.call(
        http,
        "App.Sip_Call.PlayVoice",
        {**fields, "destnumber": ",".join(numbers), "requestid": request_id},
    )
    data: dict[str, Any] = body.get("data") or {}
    if body.get("code") == 200 and (data.get("errors") or {}).get("code") == ILLEGAL_NUMBERS:
        # Every number of this chunk is invalid: nothing to dial, but nothing wrong with
        # the rest of the file either. `data` counts them as a success would.
        return data
    if body.get("code") != 200 or data.get("status") == 1:
        message = (data.get("errors") or {}).get("codemsg") or body.get("msg")
        raise SubmitError(f"refused ({body.get('code')}): {message}")
    return data


def new_request_prefix() -> str:
    return uuid.uuid4().hex[:16]


def count_numbers(path: Path) -> int:
    with path.open(newline="", encoding="utf-8-sig") as file:
        return sum(1 for _ in read_numbers(file))


def open_numbers(path: Path) -> TextIO:
    return path.open(newline="", encoding="utf-8-sig")
