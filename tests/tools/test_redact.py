"""The redactor: secrets and tokens go, ordinary diagnostics stay."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tools.redact import MASK, redact, redact_lines


def test_each_kind_of_secret_is_masked() -> None:
    cases = {
        "Authorization: Bearer eyJraWQiOiJ4In0.abc": "eyJraWQiOiJ4In0",
        "Authorization: Basic dXNlcjpwYXNzd29yZA==": "dXNlcjpwYXNzd29yZA",
        "dial redis://:s3cr3t@redis-cart:6379": "s3cr3t",
        "postgres://app:hunter2@db:5432/app?sslmode=disable": "hunter2",
        "PASSWORD=hunter2 USER=app": "hunter2",
        'config {"client_secret": "abc123xyz", "debug": true}': "abc123xyz",
        "api-key: 0123456789abcdef": "0123456789abcdef",
        "aws_access_key_id AKIAIOSFODNN7EXAMPLE": "AKIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY": "wJalrXUtnFEMI",
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.dGhlLXNpZ25hdHVyZQ": "dGhlLXNpZ25hdHVyZQ",
        "token ghp_abcdefghijklmnopqrstuvwxyz0123456789": "ghp_abcdefghij",
        "slack xoxb-1234567890-abcdefghij": "xoxb-1234567890",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----": "MIIEvQIBADANBg",
    }
    for text, secret in cases.items():
        out, count = redact(text)
        assert secret not in out, (text, out)
        assert count >= 1
        assert MASK in out


def test_ordinary_lines_are_left_alone() -> None:
    for line in (
        "GET /cart 200 12ms",
        "dial tcp 10.0.3.7:6379: connect: connection refused",
        "rpc error: code = Unavailable desc = connection error",
        "token bucket refilled",
        "OOMKilled: container server exceeded its memory limit",
        '{"severity":"error","message":"failed to get cart: redis timeout"}',
    ):
        assert redact(line) == (line, 0)


def test_pem_blocks_across_log_lines() -> None:
    lines = [
        "loading key",
        "-----BEGIN RSA PRIVATE KEY-----",
        "MIIEowIBAAKC",
        "abcd",
        "-----END RSA PRIVATE KEY-----",
        "started",
    ]
    out, count = redact_lines(lines)
    assert out[0] == "loading key"
    assert out[-1] == "started"
    assert "MIIEowIBAAKC" not in "\n".join(out)
    assert count == 4


@given(st.text(max_size=200), st.sampled_from(["hunter2", "Zx9-secret-Q", "s3cr3t!!"]))
def test_a_password_assignment_never_survives(prefix: str, password: str) -> None:
    out, _count = redact(f"{prefix} password={password}")
    assert f"password={password}" not in out
    again, _ = redact(out)
    assert again == out
