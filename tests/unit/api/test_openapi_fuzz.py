"""REST `/v1` against its own OpenAPI schema: Schemathesis sends generated requests, valid
and invalid, and every answer must be a documented status with a body that fits the
schema, and never a server error.

The requests carry valid credentials and name a task and a call that exist, so they get
past authentication and lookups into the services' own validation. Generation is
derandomized and bounded, so the run is the same every time.
"""

from __future__ import annotations

import base64
import itertools
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from factories import add_account, add_uploaded_voice
from ivrcast.api.http_server import server_config
from ivrcast.app import create_app
from ivrcast.config import Settings
from ivrcast.credentials import hash_secret, load_secret_key
from ivrcast.store.engine import Database
from ivrcast.store.migrate import upgrade_to_head

BASIC = {"Authorization": "Basic " + base64.b64encode(b"alice:secret-key").decode()}
EXAMPLES = 60
"""Per operation and mode: some 15 seconds per database engine on a small machine."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def seed(settings: Settings) -> None:
    """Account `alice` (Indonesia) with the voice `welcome`."""
    db = Database(settings.database_url)
    upgrade_to_head(db)
    now = datetime.now(UTC)
    with db.write() as conn:
        account = add_account(
            conn,
            "alice",
            now=now,
            accesskey_hash=hash_secret(load_secret_key(settings), "secret-key"),
            countries=["id"],
        )
        add_uploaded_voice(conn, account.id, now=now)
    db.dispose()


@pytest.fixture
def existing(tmp_path: Path, database_url: str) -> Iterator[dict[str, Any]]:
    """The app in a real uvicorn server, with one account, voice, task and call, on each
    database engine (they differ in what they refuse: NUL characters, huge integers)."""
    settings = Settings.model_validate(
        {"data_dir": tmp_path / "data", "database_url": database_url}
    )
    seed(settings)
    app = create_app(settings, deliver_callbacks=False)
    listener = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(server_config(app, settings, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    host, port = listener.getsockname()[:2]
    url = f"http://{host}:{port}"
    try:
        # The socket listens already: this waits in its backlog until uvicorn serves.
        with httpx.Client(base_url=url, headers=BASIC, timeout=30) as client:
            task = client.post(
                "/v1/tasks",
                json={
                    "nationcode": "id",
                    "destnumber": ["081234567890"],
                    "voicetype": 1,
                    "voicefile": "welcome",
                },
            ).json()["taskid"]
            call = client.get("/v1/calls").json()["calls"][0]["uuid"]
        yield {"url": url, "taskid": task, "uuid": call}
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def reaching_the_numbers(drawn: tuple[Any, bool]) -> Any:
    """Half the generated tasks get a nation, a voice and a voice type that exist, so
    that the rest of the task (numbers, options, custom fields) is fuzzed too."""
    case, deep = drawn
    if deep and isinstance(case.body, dict):
        case.body.update(nationcode="id", voicetype=1, voicefile="welcome")
    return case


def test_every_answer_is_documented_and_none_is_a_server_error(
    existing: dict[str, Any],
) -> None:
    schema = schemathesis.openapi.from_url(existing["url"] + "/v1/openapi.json")
    for mode, result in itertools.product(GenerationMode, schema.get_all_operations()):
        operation = result.ok()
        if mode is GenerationMode.NEGATIVE and not (len(operation.query) or len(operation.body)):
            continue  # nothing to make invalid: the path's ids are fixed to existing ones
        known = {name: existing[name] for name in ("taskid", "uuid") if name in operation.path}
        strategy = operation.as_strategy(mode, headers=BASIC, path_parameters=known or None)
        if mode is GenerationMode.POSITIVE and operation.label == "POST /v1/tasks":
            strategy = st.tuples(strategy, st.booleans()).map(reaching_the_numbers)

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def answers_well(case: Any) -> None:
            case.call_and_validate(checks=CHECKS)

        answers_well()
