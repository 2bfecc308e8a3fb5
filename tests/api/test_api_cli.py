"""`queueworker api` options: keys from files or the environment, one clear line on a bad one."""

from __future__ import annotations

from pathlib import Path

import pytest

from queueworker.api.cli import main, parser, settings_from
from queueworker.api.settings import RateLimit

from support.api_client import SECRET


def test_no_key_is_exit_2_naming_the_options(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("QUEUEWORKER_API_JWT_SECRET", "QUEUEWORKER_API_JWT_PUBLIC_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert main(["--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("queueworker: no JWT key: set QUEUEWORKER_API_JWT_SECRET (HS256)")


def test_a_missing_key_file_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--jwt-secret-file", "/nonexistent/jwt"]) == 2
    assert "cannot read the JWT secret file '/nonexistent/jwt'" in capsys.readouterr().err


def test_keys_from_files_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    old = b"x" * 40
    (tmp_path / "hs256").write_bytes(SECRET + b"\n" + old + b"\n")
    s = settings_from(parser().parse_args(["--jwt-secret-file", str(tmp_path / "hs256"),
                                           "--redis-url", "unix:///run/redis.sock"]))
    assert s.hs256_secrets == [SECRET, old]
    assert s.redis_url == "unix:///run/redis.sock"  # as the worker takes it
    monkeypatch.setenv("QUEUEWORKER_API_JWT_SECRET", SECRET.decode())
    monkeypatch.setenv("QUEUEWORKER_API_RATE_LIMIT", "30/minute")
    s = settings_from(parser().parse_args([]))
    assert s.hs256_secrets == [SECRET]
    assert s.rate_limit == RateLimit(30, 60.0)
    assert settings_from(parser().parse_args(["--rate-limit", "0"])).rate_limit is None
    assert settings_from(parser().parse_args([])).max_wait == 300.0
