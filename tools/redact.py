"""Redact secrets and tokens from text before a model, a transcript or a log line sees it.

Log lines, env values and ConfigMap values can carry credentials. SAFETY.md:
secrets and tokens never appear in transcripts, logs or telemetry. This is the
one filter the tools run over every such text. It errs toward redacting: a
value that only looks like a secret is replaced too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[REDACTED]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization headers and bearer tokens.
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9\-._~+/]{8,}=*"), rf"\1\2{MASK}"),
    # user:password@ in URLs (postgres://app:hunter2@db:5432/x, redis://:pw@host).
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/\s@]*:)[^@/\s]+@"), rf"\1{MASK}@"),
    # JSON Web Tokens.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), MASK),
    # AWS access key ids.
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b"), MASK),
    # GitHub, Slack and OpenAI-style tokens.
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|xox[abpors]-[A-Za-z0-9-]{10,})"), MASK),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"), MASK),
    # key=value, key: value and "key": "value" where the key names a secret.
    (
        re.compile(
            r"""(?ix)
            (["']?
             [\w.\-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key
                       |private[_-]?key|credentials?|client[_-]?secret|auth[_-]?key)[\w.\-]*
             ["']?\s*[=:]\s*["']?)
            ([^\s"',;&}{]+)
            """
        ),
        rf"\1{MASK}",
    ),
)

_PEM_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")
_PEM_END = re.compile(r"-----END ([A-Z0-9 ]+)-----")
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?(?:-----END \1-----|$)", re.DOTALL)

#: Cheap test before the regexes: lines without any of these cannot match.
_HINT = re.compile(
    r"(?i)bearer|basic|://|eyJ|AKIA|ASIA|AGPA|AIDA|AROA|ANPA|gh[pousr]_|xox|sk-|pass|pwd|secret"
    r"|token|key|credential|-----"
)


def redact(text: str) -> tuple[str, int]:
    """`text` with secrets masked, and how many were masked. PEM blocks go whole."""
    if not _HINT.search(text):
        return text, 0
    count = 0

    def pem(_m: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"-----{MASK} PEM BLOCK-----"

    text = _PEM_BLOCK.sub(pem, text)
    for pattern, replacement in _PATTERNS:
        text, n = pattern.subn(replacement, text)
        count += n
    return text, count


def redact_lines(lines: Iterable[str]) -> tuple[list[str], int]:
    """Redact log lines one by one, masking every line inside a PEM block."""
    out: list[str] = []
    total = 0
    in_pem = False
    for line in lines:
        if in_pem:
            if _PEM_END.search(line):
                in_pem = False
            out.append(MASK)
            total += 1
            continue
        begin = _PEM_BEGIN.search(line)
        if begin and not _PEM_END.search(line, begin.end()):
            in_pem = True
            out.append(line[: begin.start()] + f"-----{MASK} PEM BLOCK-----")
            total += 1
            continue
        redacted, n = redact(line)
        out.append(redacted)
        total += n
    return out, total
