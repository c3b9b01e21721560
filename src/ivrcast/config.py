"""Settings: one TOML file plus three environment overrides, read once at start-up.

`load_settings(path, environ)` is the only place that reads the file or the environment;
everything else receives the frozen `Settings` tree. Unknown keys and bad values fail
at start with the dotted key named, so a typo in a trunk never surfaces as a silent
default at 3 a.m.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ivrcast.errors import ConfigError

ENV_CONFIG = "IVRCAST_CONFIG"
ENV_DATA_DIR = "IVRCAST_DATA_DIR"
ENV_DATABASE_URL = "IVRCAST_DATABASE_URL"

_WINDOW = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    # Every request body but an upload's, counted as it streams (chunked or not). An
    # upload may carry `limits.max_upload_bytes` more.
    max_body_bytes: Annotated[int, Field(ge=64 * 1024, le=256 * 1024 * 1024)] = 2 * 1024 * 1024
    # A request's headers must all arrive within this time of its first byte (or of
    # the connection's opening), or the connection is closed.
    header_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    # A body may pause this long between two pieces, and must be whole within the
    # deadline; otherwise the request is answered 408 and the connection closed.
    body_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0
    body_deadline_seconds: Annotated[float, Field(gt=0, le=3600)] = 300.0
    # The address customers reach the API at ("https://ivr.example.com"), for the links
    # put in call records (`recordurl`); none: http://host:port.
    public_url: str | None = None

    @field_validator("public_url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError(f"public_url must be an http:// or https:// URL, got {value!r}")
        return value.rstrip("/")

    @property
    def base_url(self) -> str:
        """Where links in call records point: `public_url`, or this server's address."""
        if self.public_url:
            return self.public_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class RecordingSettings(_Section):
    """Call recordings (PlayVoice `record=1`): docs/recordings.md."""

    # Where the dialer writes them and the API reads them; in a fleet, a mount every
    # node shares. None: <data_dir>/recordings.
    dir: Path | None = None
    # Recordings older than this are deleted.
    keep_days: Annotated[int, Field(ge=1, le=3650)] = 30
    # How long the signed link in a call record (`recordurl`) stays valid.
    link_days: Annotated[int, Field(ge=1, le=3650)] = 7


class SecuritySettings(_Section):
    allow_private_urls: bool = False
    # Keys the accesskey hashes. When absent, a random key is created once in the data
    # folder, so a fresh install is safe without any set-up.
    secret_key: str | None = None
    operator_token: str | None = None
    token_ttl_hours: Annotated[int, Field(ge=1, le=24 * 30)] = 12
    # A console sign-in lasts this long, however active the user is; then they sign in again.
    console_session_minutes: Annotated[int, Field(ge=1, le=7 * 24 * 60)] = 8 * 60
    # Failed sign-ins (accesskey or operator token) allowed per appid and client address
    # within the window; past them, that pair is refused until its oldest failure ages out.
    max_failed_sign_ins: Annotated[int, Field(ge=1, le=10_000)] = 10
    failed_sign_in_window_seconds: Annotated[int, Field(ge=1, le=24 * 3600)] = 60


class CallbackSettings(_Section):
    timezone: str = "UTC"
    max_age_hours: Annotated[float, Field(gt=0, le=24 * 14)] = 24.0
    concurrency: Annotated[int, Field(ge=1, le=1000)] = 50
    per_host: Annotated[int, Field(ge=1, le=100)] = 8
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0
    # Retry delays double from the base up to the cap, each drawn with jitter.
    backoff_base_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    backoff_cap_seconds: Annotated[float, Field(gt=0, le=24 * 3600)] = 3600.0
    # Only the status matters; the start of an error body is kept for the operator.
    max_response_bytes: Annotated[int, Field(ge=0, le=1024 * 1024)] = 16 * 1024
    poll_seconds: Annotated[float, Field(gt=0, le=60)] = 0.1

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _check_zone(value)

    @model_validator(mode="after")
    def _cap_above_base(self) -> CallbackSettings:
        if self.backoff_cap_seconds < self.backoff_base_seconds:
            raise ValueError("backoff_cap_seconds must not be below backoff_base_seconds")
        return self


class LimitSettings(_Section):
    max_numbers: Annotated[int, Field(ge=1, le=100_000)] = 5000
    max_voice_seconds: Annotated[float, Field(gt=0, le=3600)] = 600.0
    # Refused from the file's headers, before any decoding: a phone plays mono 8 kHz.
    max_voice_channels: Annotated[int, Field(ge=1, le=64)] = 2
    max_voice_sample_rate: Annotated[int, Field(ge=8000, le=768_000)] = 48_000
    # Worker processes that transcode voices (uploads and URLs), one voice at a time per
    # account; the API's event loop and its database threads never decode audio.
    transcode_workers: Annotated[int, Field(ge=1, le=64)] = 1
    # Stored G.711 renditions (PCMU + PCMA, 16 kB per second of audio) per account, named
    # voices and cached URL voices alike.
    max_voice_storage_bytes: Annotated[int, Field(ge=0)] = 200 * 1024 * 1024
    max_upload_bytes: Annotated[int, Field(ge=1024)] = 20 * 1024 * 1024
    fetch_connect_timeout: Annotated[float, Field(gt=0, le=60)] = 5.0
    fetch_total_timeout: Annotated[float, Field(gt=0, le=300)] = 30.0
    waittime_default: Annotated[int, Field(ge=1)] = 30
    waittime_max: Annotated[int, Field(ge=1)] = 120
    conntime_max: Annotated[int, Field(ge=1)] = 3600
    key_wait_seconds: Annotated[float, Field(ge=0, le=60)] = 5.0
    custom_field_max: Annotated[int, Field(ge=1, le=10_000)] = 255
    # How much of a batch's invalid numbers is kept with its task and echoed in replies:
    # the first `invalid_listed_max` items, each cut to `invalid_number_chars` characters
    # (`invalidcount` still counts them all), so a huge bad `destnumber` is not stored.
    invalid_listed_max: Annotated[int, Field(ge=0, le=100_000)] = 100
    invalid_number_chars: Annotated[int, Field(ge=8, le=1024)] = 32


class AmdSettings(_Section):
    """Answering-machine detection (PlayVoice `amd=1`): docs/amd.md says how each is used
    and how the defaults were measured."""

    total_ms: Annotated[int, Field(ge=1000, le=30000)] = 4000
    initial_silence_ms: Annotated[int, Field(ge=500, le=30000)] = 2500
    greeting_ms: Annotated[int, Field(ge=300, le=10000)] = 2200
    after_greeting_silence_ms: Annotated[int, Field(ge=100, le=5000)] = 700
    max_words: Annotated[int, Field(ge=1, le=20)] = 5
    min_word_ms: Annotated[int, Field(ge=20, le=1000)] = 100
    between_words_silence_ms: Annotated[int, Field(ge=20, le=1000)] = 60
    speech_dbfs: Annotated[float, Field(ge=-80, le=-10)] = -40.0
    tone_purity: Annotated[float, Field(gt=0, le=1)] = 0.8
    beep_min_ms: Annotated[int, Field(ge=40, le=2000)] = 120
    greeting_end_silence_ms: Annotated[int, Field(ge=200, le=10000)] = 1500
    beep_timeout_ms: Annotated[int, Field(ge=1000, le=60000)] = 20000


class Window(BaseModel):
    """A daily calling window in the country's local time; `end` before `start` spans midnight."""

    model_config = ConfigDict(frozen=True)
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> Window:
        match = _WINDOW.match(text.strip())
        if not match:
            raise ValueError(f"window must look like 09:00-20:00, got {text!r}")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2 != 0):
            raise ValueError(f"window has an impossible time: {text!r}")
        end = time.max if h2 == 24 else time(h2, m2)
        if (h1, m1) == (h2, m2):
            raise ValueError(f"window is empty: {text!r}")
        return cls(start=time(h1, m1), end=end)

    def __str__(self) -> str:
        end = "24:00" if self.end == time.max else self.end.strftime("%H:%M")
        return f"{self.start.strftime('%H:%M')}-{end}"


class CountrySettings(_Section):
    window: Window = Window(start=time(9, 0), end=time(20, 0))
    timezone: str | None = None

    @field_validator("window", mode="before")
    @classmethod
    def _parse_window(cls, value: Any) -> Any:
        return Window.parse(value) if isinstance(value, str) else value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else _check_zone(value)


class TrunkSettings(_Section):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    countries: Annotated[list[str], Field(min_length=1)]
    proxy: str
    username: str | None = None
    password: str | None = None
    number_format: str = "e164"
    callerids: list[str] = []
    max_channels: Annotated[int, Field(ge=1, le=100_000)] = 30
    max_cps: Annotated[float, Field(gt=0, le=10_000)] = 10.0
    weight: Annotated[int, Field(ge=1, le=1000)] = 1

    @field_validator("proxy")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"proxy must be host:port, got {value!r}")
        return value

    @field_validator("number_format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value in ("e164", "plus", "national") or re.fullmatch(r"prefix:\d{1,16}", value):
            return value
        raise ValueError(
            f"number_format must be e164, plus, national or prefix:DIGITS, got {value!r}"
        )

    @property
    def host(self) -> str:
        return self.proxy.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.proxy.rpartition(":")[2])


class DialerSettings(_Section):
    poll_interval: Annotated[float, Field(gt=0, le=60)] = 0.2
    claim_batch: Annotated[int, Field(ge=1, le=10_000)] = 200
    sip_host: str = "127.0.0.1"
    sip_port: Annotated[int, Field(ge=0, le=65535)] = 0
    shutdown_grace: Annotated[float, Field(ge=0, le=3600)] = 30.0
    heartbeat_seconds: Annotated[float, Field(gt=0, le=600)] = 5.0


class SipSettings(_Section):
    """The call engine's SIP and RTP tuning (where it listens is `[dialer]`)."""

    # The address put in Via, Contact and the SDP when the one we listen on is not the one
    # the carrier reaches (NAT); none: the listening address, or the route to the trunk.
    advertised_host: str | None = None
    # RTP ports, "LOW-HIGH", even ports only (RFC 3550 §11); none: ephemeral ports.
    rtp_port_range: str | None = None
    # An answered call with no RTP from the far end this long is hung up; 0 turns it off.
    no_rtp_timeout: Annotated[float, Field(ge=0, le=3600)] = 30.0
    # RFC 3261 T1 (round-trip estimate); Timer B and the like are 64×T1.
    t1: Annotated[float, Field(ge=0.05, le=4.0)] = 0.5

    @field_validator("advertised_host")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"advertised_host must be an IP address, got {value!r}") from None
        return value

    @field_validator("rtp_port_range")
    @classmethod
    def _port_range(cls, value: str | None) -> str | None:
        if value is not None:
            _parse_port_range(value)
        return value

    @property
    def rtp_ports(self) -> tuple[int, int] | None:
        return None if self.rtp_port_range is None else _parse_port_range(self.rtp_port_range)


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class LoggingSettings(_Section):
    """Log output (`ivrcast.logs`): every process writes one line per record to stderr."""

    # "text": `time LEVEL logger: message key=value …`; "json": one JSON object a line.
    format: Literal["text", "json"] = "text"
    level: LogLevel = "INFO"
    # A level per logger name, e.g. {"ivrcast.sip" = "DEBUG"}; children inherit it.
    levels: dict[str, LogLevel] = {}

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("levels", mode="before")
    @classmethod
    def _upper_each(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v.upper() if isinstance(v, str) else v for k, v in value.items()}
        return value


def _parse_port_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit():
        raise ValueError(f"rtp_port_range must look like 10000-20000, got {text!r}")
    first, last = int(low), int(high)
    if not 1024 <= first < last <= 65535 or last - first < 2:
        raise ValueError(f"rtp_port_range must be within 1024-65535, low below high: {text!r}")
    return first, last


class Settings(_Section):
    data_dir: Path = Path("./var")
    database_url: str = ""
    server: ServerSettings = ServerSettings()
    security: SecuritySettings = SecuritySettings()
    callbacks: CallbackSettings = CallbackSettings()
    limits: LimitSettings = LimitSettings()
    dialer: DialerSettings = DialerSettings()
    sip: SipSettings = SipSettings()
    recordings: RecordingSettings = RecordingSettings()
    amd: AmdSettings = AmdSettings()
    logging: LoggingSettings = LoggingSettings()
    countries: dict[str, CountrySettings] = {}
    trunks: list[TrunkSettings] = []
    config_path: Path | None = None
    demo: Literal["auto", "on", "off"] = "auto"

    @model_validator(mode="after")
    def _defaults(self) -> Settings:
        if not self.database_url:
            db = (self.data_dir / "ivrcast.db").as_posix()
            object.__setattr__(self, "database_url", f"sqlite:///{db}")
        names = [t.name for t in self.trunks]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"trunk names must be unique, repeated: {', '.join(duplicated)}")
        return self

    @property
    def recordings_dir(self) -> Path:
        return self.recordings.dir or self.data_dir / "recordings"

    def country(self, code: str) -> CountrySettings:
        """The settings of one country, defaults when it has no table of its own."""
        return self.countries.get(code, CountrySettings())


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from a TOML file (optional) and the environment.

    `path` wins over `IVRCAST_CONFIG`; `IVRCAST_DATA_DIR` and `IVRCAST_DATABASE_URL`
    override the file.
    """
    environ = {} if environ is None else environ
    if path is None and environ.get(ENV_CONFIG):
        path = Path(environ[ENV_CONFIG])
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {path}") from exc
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        if "config_path" in raw:
            raise ConfigError("config_path: not a setting")
        raw["config_path"] = path
    if environ.get(ENV_DATA_DIR):
        raw["data_dir"] = environ[ENV_DATA_DIR]
    if environ.get(ENV_DATABASE_URL):
        raw["database_url"] = environ[ENV_DATABASE_URL]
    try:
        return Settings.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: pydantic.ValidationError) -> str:
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        given = error.get("input")
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(f"{key}: {message} (given {given!r})")
    return "invalid configuration: " + "; ".join(problems)
