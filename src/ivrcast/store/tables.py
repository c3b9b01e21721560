"""The schema. Alembic migrations must produce exactly this (a test compares them).

A call row moves through the states of design section 4; `CALL_STATES` and
`FINAL_STATES` are the single source of those names. Invariants the code relies on
are held by the database itself: one call per number per task, one record per call,
one outbox row per record.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Timestamp(TypeDecorator[datetime]):
    """A UTC instant. SQLite keeps no zone, so values are stored as UTC and read back aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a Timestamp column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


ACTIVE_STATES = ("dialing", "ringing", "answered")
FinalState = Literal[
    "completed",
    "busy",
    "no_answer",
    "failed",
    "rejected",
    "expired",
    "canceled",
    "interrupted",
    "suppressed",
    "machine",
]
FINAL_STATES: tuple[FinalState, ...] = get_args(FinalState)
CALL_STATES = ("queued", *ACTIVE_STATES, *FINAL_STATES)
# The outcomes a task may ask to be tried again (`retryon`); every other final state
# is never retried: an answered call (completed, or machine: an answering machine
# answered), a decision of ours (canceled, expired, suppressed), or an attempt whose
# fate is unknown (interrupted).
RetryableState = Literal["busy", "no_answer", "failed", "rejected"]
RETRYABLE_STATES: tuple[RetryableState, ...] = get_args(RetryableState)
TASK_STATES = ("active", "paused", "canceled", "finished")
OUTBOX_STATES = ("pending", "delivered", "dead")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


accounts = Table(
    "accounts",
    metadata,
    Column("id", Id, primary_key=True),
    Column("appid", String(64), nullable=False, unique=True),
    # HMAC-SHA256 of the accesskey under the server's secret key (hex).
    Column("accesskey_hash", String(64), nullable=False),
    Column("callback_url", Text, nullable=True),
    Column("callback_secret", Text, nullable=True),
    # Comma-separated nation codes the account may call; empty means all.
    Column("countries", Text, nullable=False, server_default=""),
    # Comma-separated caller IDs the account may ask for as `disnumber`.
    Column("callerids", Text, nullable=False, server_default=""),
    # Comma-separated client IPs or networks; empty means any (vendor code 604).
    Column("allowed_ips", Text, nullable=False, server_default=""),
    Column("max_concurrency", Integer, nullable=False, server_default="30"),
    # PlayVoice's `retries` when a request sends none (retry rounds).
    Column("default_retries", SmallInteger, nullable=False, server_default="0"),
    # PlayVoice's `record` when a request sends none: record every answered call.
    Column("default_record", Boolean, nullable=False, server_default="0"),
    Column("disabled", Boolean, nullable=False, server_default="0"),
    Column("expires_at", Timestamp(), nullable=True),
    Column("created_at", Timestamp(), nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("expires_at", Timestamp(), nullable=False),
)

voices = Table(
    "voices",
    metadata,
    Column("id", Id, primary_key=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    # Uploaded voices have a name; online voices are cached by URL and have none.
    Column("name", String(64), nullable=True),
    Column("source_url", Text, nullable=True),
    Column("source_format", String(32), nullable=False),
    Column("source_bytes", Integer, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    # 8 kHz mono G.711, 160 bytes per 20 ms frame, encoded once at upload.
    Column("pcmu", LargeBinary, nullable=False),
    Column("pcma", LargeBinary, nullable=False),
    Column("created_at", Timestamp(), nullable=False),
    UniqueConstraint("account_id", "name"),
    UniqueConstraint("account_id", "source_url"),
    CheckConstraint("name IS NOT NULL OR source_url IS NOT NULL", name="named_or_fetched"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("nationcode", String(8), nullable=False),
    Column("voice_id", ForeignKey("voices.id"), nullable=False),
    Column("userkey", Boolean, nullable=False),
    Column("todayonly", SmallInteger, nullable=False),
    Column("waittime", Integer, nullable=False),
    Column("conntime", Integer, nullable=False),
    Column("disnumber", String(32), nullable=True),
    Column("chengshudu", Text, nullable=False),
    Column("customuuid", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("total", Integer, nullable=False),
    Column("duplicates", Integer, nullable=False),
    Column("invalid", Integer, nullable=False),
    # Numbers not queued because a do-not-call list held them at submission.
    Column("suppressed", Integer, nullable=False, server_default="0"),
    # The submission's invalid items as JSON [{number, reason}], so that a retried
    # request (same `requestid`) is answered exactly as the first time.
    Column("invalid_entries", Text, nullable=False),
    # The client's idempotency key: a retry after a lost answer finds the task it created
    # instead of creating a second one, which would dial every number again.
    Column("request_id", String(64), nullable=True),
    # The destination country's calendar day at submission: todayonly=1 ends with it.
    Column("local_day", Date, nullable=False),
    # Retry rounds (`retries`, `retryinterval` in minutes, `retryon` a comma list of
    # `RETRYABLE_STATES`): a number is dialled at most 1 + retries times.
    Column("retries", SmallInteger, nullable=False, server_default="0"),
    Column("retry_interval", Integer, nullable=False, server_default="30"),
    Column("retry_on", String(64), nullable=False, server_default="busy,no_answer"),
    Column("created_at", Timestamp(), nullable=False),
    Column("ended_at", Timestamp(), nullable=True),
    # PlayVoice `record=1`: every answered call is recorded (docs/recordings.md).
    Column("record", Boolean, nullable=False, server_default="0"),
    # PlayVoice `amd=1`: answering-machine detection, and what to do on a machine
    # (`amdaction`: hangup, play or beep; docs/amd.md).
    Column("amd", Boolean, nullable=False, server_default="0"),
    Column("amdaction", String(8), nullable=True),
    CheckConstraint(_one_of("status", TASK_STATES), name="status"),
    CheckConstraint("todayonly IN (1, 2)", name="todayonly"),
    UniqueConstraint("account_id", "request_id"),
    # What a call's foreign key refers to (see `calls`).
    UniqueConstraint("id", "account_id"),
    Index(None, "account_id", "created_at"),
)

calls = Table(
    "calls",
    metadata,
    Column("id", Id, primary_key=True),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("task_id", String(32), nullable=False),
    Column("account_id", Id, nullable=False),
    Column("nationcode", String(8), nullable=False),
    # E.164 with `+`: what is dialed, and what makes a number unique in its task.
    Column("number", String(20), nullable=False),
    # The number as the customer submitted it, separators stripped (`081234567890`): what
    # records report as `destnumber`. NULL on rows stored before it was kept (migration
    # 0002); readers then take the E.164 digits.
    Column("submitted_number", String(32), nullable=True),
    Column("status", String(16), nullable=False),
    Column("round", SmallInteger, nullable=False, server_default="1"),
    # A later round is not claimed before this instant (the previous round's end plus
    # the task's interval); NULL for round 1, due at once.
    Column("due_at", Timestamp(), nullable=True),
    # False once a further round of the number was queued when this one ended.
    Column("final", Boolean, nullable=False, server_default="1"),
    # The dialer node holding the call while it is active; recovery reads it.
    Column("node_id", String(64), nullable=True),
    # The dialer node that claimed it, kept once the call has ended (0004): which node
    # dialed what, across a fleet. Cleared only when a call goes back to the queue unsent.
    Column("dialed_by", String(64), nullable=True),
    Column("trunk", String(64), nullable=True),
    Column("disnumber", String(32), nullable=True),
    Column("queued_at", Timestamp(), nullable=False),
    Column("claimed_at", Timestamp(), nullable=True),
    Column("invited_at", Timestamp(), nullable=True),
    Column("ringing_at", Timestamp(), nullable=True),
    Column("answered_at", Timestamp(), nullable=True),
    Column("ended_at", Timestamp(), nullable=True),
    Column("sip_code", SmallInteger, nullable=True),
    Column("sip_reason", Text, nullable=True),
    Column("q850_cause", SmallInteger, nullable=True),
    Column("hangup_cause", Integer, nullable=True),
    Column("hangup_direction", Integer, nullable=True),
    Column("keys", String(64), nullable=False, server_default=""),
    Column("codec", String(8), nullable=True),
    Column("rtp_sent", Integer, nullable=True),
    Column("rtp_received", Integer, nullable=True),
    Column("rtp_lost", Integer, nullable=True),
    # A recording of the call was written (its file: recordings.recording_path); False:
    # the task asked for one but none was made (not answered, or the disk failed).
    Column("recorded", Boolean, nullable=True),
    # Answering-machine detection's verdict (human, machine, unknown) and the time it took
    # from the answer; null when it did not run.
    Column("answered_by", String(8), nullable=True),
    Column("amd_ms", Integer, nullable=True),
    CheckConstraint(_one_of("status", CALL_STATES), name="status"),
    # One key for the task and the account (0009): the call's task exists and the call's
    # account is its task's. PostgreSQL checks a foreign key with one lookup per row, and
    # two keys were 40% of writing a 5000-call submission (docs/benchmarks.md).
    ForeignKeyConstraint(["task_id", "account_id"], ["tasks.id", "tasks.account_id"]),
    UniqueConstraint("task_id", "number", "round"),
    # The claim reads a task's queued calls in submission order straight off this index
    # (`transitions.claim_due_calls`: status and task fixed, ORDER BY id), so it walks only
    # the rows it takes, however deep the queue; a due task's count and whether a task has
    # calls left are read the same way. Calls in progress (per account, per node for
    # recovery) are the `status` range of it. A task's calls of every state are found
    # through the unique (task_id, number, round) index. No more: each index costs every
    # 5000-number submission.
    Index(None, "status", "task_id", "id"),
)

call_records = Table(
    "call_records",
    metadata,
    Column("id", Id, primary_key=True),
    Column("call_id", ForeignKey("calls.id"), nullable=False, unique=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("task_id", ForeignKey("tasks.id"), nullable=False),
    Column("uuid", String(36), nullable=False, unique=True),
    # The JSON object pushed to the callback URL, frozen when the call ended.
    Column("payload", Text, nullable=False),
    Column("created_at", Timestamp(), nullable=False),
    # Set when pulled with App.Sip_Cdr.GetBill (syncflag).
    Column("fetched_at", Timestamp(), nullable=True),
    Index(None, "account_id", "created_at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True),
    Column("record_id", ForeignKey("call_records.id"), nullable=False, unique=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Timestamp(), nullable=False),
    Column("last_error", Text, nullable=True),
    Column("last_status", SmallInteger, nullable=True),
    Column("created_at", Timestamp(), nullable=False),
    Column("delivered_at", Timestamp(), nullable=True),
    CheckConstraint(_one_of("status", OUTBOX_STATES), name="status"),
    Index(None, "status", "next_attempt_at"),
    # The per-account claim (`store.outbox`): the accounts with pending rows one index
    # seek each, an account's oldest pending row one more, its due rows in order. With
    # the index above alone, each claim went through every due row.
    Index(None, "status", "account_id", "next_attempt_at"),
)

# Do-not-call lists: numbers (E.164 with `+`) never to be dialled. `account_id` 0 is
# the operator's global list, which applies to every account (so it is no foreign key).
# The primary key serves both lookups: a submission's numbers and a claimed call's.
dnc = Table(
    "dnc",
    metadata,
    Column("account_id", Id, primary_key=True, autoincrement=False),
    Column("number", String(20), primary_key=True),
    Column("created_at", Timestamp(), nullable=False),
)

nodes = Table(
    "nodes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("hostname", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Timestamp(), nullable=False),
    Column("heartbeat_at", Timestamp(), nullable=False),
    Column("stopped_at", Timestamp(), nullable=True),
    # What the node reported at its last heartbeat (JSON: calls, trunks with their channels
    # and rate), for the console and /metrics (0004).
    Column("stats", Text, nullable=True),
)

# One row per failed sign-in (wrong accesskey or operator token), so that every API
# process on the same database sees the same count (`ivrcast.store.sign_ins`). Rows
# older than the throttling window are deleted as new failures arrive.
failed_sign_ins = Table(
    "failed_sign_ins",
    metadata,
    Column("id", Id, primary_key=True),
    # The appid tried ("" for the operator token), cut to the column's length.
    Column("appid", String(64), nullable=False),
    Column("client_ip", String(64), nullable=False),
    Column("failed_at", Timestamp(), nullable=False),
    Index(None, "appid", "client_ip", "failed_at"),
    Index(None, "failed_at"),
)
