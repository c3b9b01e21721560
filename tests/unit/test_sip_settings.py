"""The `[sip]` settings: defaults, bounds named by their dotted key, and the engine the
dialer builds from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivrcast.config import Settings, load_settings
from ivrcast.dialer.service import engine_for
from ivrcast.errors import ConfigError


def settings_from(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "ivrcast.toml"
    path.write_text(text)
    return load_settings(path, {})


def test_defaults_give_the_engine_its_former_defaults(tmp_path: Path) -> None:
    engine = engine_for(settings_from(tmp_path, ""))
    assert engine.no_rtp_timeout == 30.0
    assert engine.timers.t1 == 0.5
    assert engine.rtp_port_range is None
    assert engine.advertised_host is None


def test_the_dialer_passes_every_sip_setting_to_the_engine(tmp_path: Path) -> None:
    settings = settings_from(
        tmp_path,
        '[sip]\nadvertised_host = "203.0.113.7"\nrtp_port_range = "20000-20100"\n'
        "no_rtp_timeout = 12.5\nt1 = 0.25\n",
    )
    engine = engine_for(settings)
    assert engine.advertised_host == "203.0.113.7"
    assert engine.rtp_port_range == (20000, 20100)
    assert engine.no_rtp_timeout == 12.5
    assert engine.timers.t1 == 0.25
    assert engine.timers.timer_b == 16.0


def test_no_rtp_timeout_zero_turns_the_timer_off(tmp_path: Path) -> None:
    assert engine_for(settings_from(tmp_path, "[sip]\nno_rtp_timeout = 0\n")).no_rtp_timeout is None


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('rtp_port_range = "20000"', "sip.rtp_port_range"),
        ('rtp_port_range = "30000-20000"', "sip.rtp_port_range"),
        ('rtp_port_range = "80-2000"', "sip.rtp_port_range"),
        ('rtp_port_range = "20000-20001"', "sip.rtp_port_range"),
        ('advertised_host = "carrier.example"', "sip.advertised_host"),
        ("t1 = 0.001", "sip.t1"),
        ("t1 = 10", "sip.t1"),
        ("no_rtp_timeout = -1", "sip.no_rtp_timeout"),
        ("force_proxy = true", "sip.force_proxy"),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, line: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        settings_from(tmp_path, f"[sip]\n{line}\n")
