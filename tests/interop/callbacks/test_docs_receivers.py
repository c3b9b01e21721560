"""The verification snippets of docs/callbacks.md, run as written.

The PHP one is a whole receiver: PHP's own web server (`php -S`) runs it on loopback and
the callback sender delivers real records to it.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from callback_world import finish_task, make_account, outbox_rows
from ivrcast.callbacks.sender import CallbackSender
from ivrcast.callbacks.signing import sign
from ivrcast.config import Settings
from ivrcast.store.engine import Database
from peers import require_executable

DOC = Path(__file__).parents[3] / "docs" / "callbacks.md"


def snippet(language: str) -> str:
    (code,) = re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return str(code)


@pytest.fixture(scope="module")
def python_check() -> Callable[..., bool]:
    namespace: dict[str, Any] = {}
    exec(compile(snippet("python"), str(DOC), "exec"), namespace)
    check: Callable[..., bool] = namespace["ivrcast_signature_ok"]
    return check


def test_the_python_snippet_accepts_what_ivrcast_signs(python_check: Callable[..., bool]) -> None:
    body = '{"uuid":"u","chengshudu":"客户"}'.encode()
    header = sign(body, "s3cret", timestamp=int(time.time()))
    assert python_check(header, body, "s3cret")
    assert not python_check(header, body.replace(b"u", b"v"), "s3cret")
    assert not python_check(header, body, "other")
    assert not python_check(sign(body, "s3cret", timestamp=int(time.time()) - 600), body, "s3cret")
    assert not python_check("", body, "s3cret")


@pytest.fixture
def php_receiver(tmp_path: Path) -> Iterator[str]:
    php = require_executable("php", "php-cli")
    script = tmp_path / "receiver.php"
    script.write_text(snippet("php"), encoding="utf-8")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [php, "-S", f"127.0.0.1:{port}", str(script)],
        cwd=tmp_path,
        env={"IVRCAST_CALLBACK_SECRET": "s3cret", "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.02)  # polling for readiness, bounded by the deadline
        yield f"http://127.0.0.1:{port}/callback"
    finally:
        process.terminate()
        process.wait(10)


async def test_the_php_receiver_acknowledges_signed_records_and_refuses_others(
    database: Database, php_receiver: str
) -> None:
    right = make_account(database, "right", callback_url=php_receiver, secret="s3cret")
    wrong = make_account(database, "wrong", callback_url=php_receiver, secret="not-it")
    unsigned = make_account(database, "unsigned", callback_url=php_receiver, secret=None)
    for account in (right, wrong, unsigned):
        finish_task(database, account, 2, now=datetime.now(UTC))
    settings = Settings.model_validate({"security": {"allow_private_urls": True}})
    sender = CallbackSender(settings, database)  # the real clock: PHP checks t with time()
    assert await sender.deliver_due() == 6
    await sender.aclose()
    by_account = {
        account.id: {
            (row["status"], row["last_status"])
            for row in outbox_rows(database)
            if row["account_id"] == account.id
        }
        for account in (right, wrong, unsigned)
    }
    assert by_account == {
        right.id: {("delivered", 200)},
        wrong.id: {("pending", 401)},
        unsigned.id: {("pending", 401)},
    }
