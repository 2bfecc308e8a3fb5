"""The one redactor: URL passwords and Secret values never survive."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from queueworker.common.redact import redact, redact_url


def test_url_password_removed_user_kept() -> None:
    assert redact_url("redis://app:s3cr3t@redis:6379/0") == "redis://app:***@redis:6379/0"
    assert redact_url("rediss://:s3cr3t@redis:6380") == "rediss://:***@redis:6380"
    assert redact_url("redis://redis:6379/0") == "redis://redis:6379/0"


def test_secret_values_removed_anywhere() -> None:
    text = "AUTH failed for hunter22 at redis://u:hunter22@h:1"
    assert "hunter22" not in redact(text, ["hunter22"])


def test_short_or_missing_secrets_do_not_blank_text() -> None:
    assert redact("a b c", [None, "", "a"]) == "a b c"


# A URL cannot carry raw whitespace or control characters (they are %-encoded), so
# the password alphabet is letters, digits, punctuation and symbols, less URL delimiters.
_PASSWORD = st.characters(categories=("L", "N", "P", "S"), exclude_characters="@/:")


@given(st.text(alphabet=_PASSWORD, min_size=1, max_size=20))
def test_any_password_in_a_url_is_removed(password: str) -> None:
    text = f"error talking to redis://user:{password}@host:6379/0"
    assert redact(text) == "error talking to redis://user:***@host:6379/0"
