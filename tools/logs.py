"""Pod logs: current and previous container, capped in lines and bytes, secrets redacted.

Logs are the largest thing an agent reads, and the most dangerous: they can
be huge, and they carry whatever the application printed, including
credentials. So the API server is asked only for the newest lines that fit
the cap (one more, to know whether there were more), bytes are capped from
the newest end, long lines are cut, and every line goes through the redactor.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from tools.args import ContainerName, Name, Namespace, ToolArgs
from tools.errors import NotFound
from tools.kube import KINDS, meta
from tools.redact import redact_lines
from tools.registry import Answer, Toolbox, read_tool
from tools.result import Truncation

#: Lines returned at most, whatever is asked.
MAX_LINES = 2000
DEFAULT_LINES = 200
#: Bytes returned at most (after redaction), newest lines kept.
MAX_BYTES = 1024 * 1024
DEFAULT_BYTES = 64 * 1024
#: A single line longer than this is cut (stack traces printed as one line, base64 blobs).
MAX_LINE_CHARS = 2000
#: What the API server may send at most for one request, to bound memory.
SERVER_LIMIT_BYTES = 8 * 1024 * 1024


class PodLogsArgs(ToolArgs):
    namespace: Namespace
    pod: Name
    container: ContainerName | None = None
    previous: bool = False
    tail_lines: Annotated[int, Field(ge=0, le=100_000)] | None = None
    since_seconds: Annotated[int, Field(ge=1, le=30 * 24 * 3600)] | None = None
    max_lines: Annotated[int, Field(ge=1, le=MAX_LINES)] = DEFAULT_LINES
    max_bytes: Annotated[int, Field(ge=256, le=MAX_BYTES)] = DEFAULT_BYTES
    timestamps: bool = False


@read_tool(PodLogsArgs)
def get_pod_logs(box: Toolbox, args: PodLogsArgs) -> Answer:
    """Read a container's log, newest lines last, capped and with secrets redacted.

    Use previous=true for the log of the container instance that crashed
    (after a restart, the current log starts fresh). The result says when
    lines, bytes or long lines were cut.

    Args:
        namespace: The pod's namespace.
        pod: The pod's name.
        container: Container name; omit for the pod's first (or only) container.
        previous: Read the previous, terminated instance of the container.
        tail_lines: Only the newest N lines (0 or more).
        since_seconds: Only lines newer than this many seconds.
        max_lines: Cap on lines returned (1-2000, default 200).
        max_bytes: Cap on bytes returned (256-1048576, default 65536).
        timestamps: Prefix each line with its RFC3339 timestamp.
    """
    conn = box.kube()
    pod = KINDS["Pod"].read(conn, args.namespace, args.pod)
    names = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
    default = (meta(pod).get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
    container = args.container or (default if default in names else (names[0] if names else ""))
    init_names = [str(c.get("name")) for c in (pod.get("spec") or {}).get("initContainers") or []]
    if container not in names + init_names:
        raise NotFound(
            f"container {container!r} not found in pod {args.namespace}/{args.pod}; "
            f"containers: {', '.join(names + init_names) or 'none'}"
        )
    wanted = args.tail_lines
    cap = args.max_lines
    ask = wanted if wanted is not None and wanted <= cap else cap + 1
    kwargs: dict[str, object] = {
        "container": container,
        "previous": args.previous or None,
        "tail_lines": ask,
        "since_seconds": args.since_seconds,
        "timestamps": args.timestamps or None,
        "limit_bytes": SERVER_LIMIT_BYTES,
    }
    text = conn.call_text(conn.core.read_namespaced_pod_log, args.pod, args.namespace, **kwargs)
    query = (
        f"GET pods/{args.pod}/log -n {args.namespace} container={container}"
        f"{' previous=true' if args.previous else ''} tailLines={ask}"
        f"{f' sinceSeconds={args.since_seconds}' if args.since_seconds else ''}"
    )
    lines = text.splitlines()
    cuts: list[Truncation] = []
    if len(text.encode()) >= SERVER_LIMIT_BYTES and lines:
        lines.pop()  # the server cut the stream: the last line may be partial
    if len(lines) > cap:
        cuts.append(
            Truncation(
                what="lines",
                limit=cap,
                kept=cap,
                note=f"more than {cap} lines; the newest {cap} are kept (raise max_lines, "
                "narrow since_seconds, or set tail_lines)",
            )
        )
        lines = lines[-cap:]
    long_lines = 0
    for i, line in enumerate(lines):
        if len(line) > MAX_LINE_CHARS:
            lines[i] = line[:MAX_LINE_CHARS] + f" ...[{len(line) - MAX_LINE_CHARS} chars cut]"
            long_lines += 1
    if long_lines:
        cuts.append(
            Truncation(
                what="line length",
                limit=MAX_LINE_CHARS,
                kept=len(lines),
                total=len(lines),
                note=f"{long_lines} lines longer than {MAX_LINE_CHARS} characters were cut",
            )
        )
    redacted, redactions = redact_lines(lines)
    kept: list[str] = []
    size = 0
    for line in reversed(redacted):
        size += len(line.encode()) + 1
        if size > args.max_bytes:
            break
        kept.append(line)
    kept.reverse()
    if not kept and redacted:
        # The newest line alone is over the byte cap: return its start rather than nothing.
        newest = redacted[-1].encode()[: max(args.max_bytes - 32, 0)].decode(errors="ignore")
        kept = [f"{newest} ...[cut]"]
    if len(kept) < len(redacted):
        cuts.append(
            Truncation(
                what="bytes",
                limit=args.max_bytes,
                kept=len(kept),
                total=len(redacted),
                note=f"only the newest {len(kept)} lines fit in {args.max_bytes} bytes",
            )
        )
    data = {
        "pod": args.pod,
        "namespace": args.namespace,
        "container": container,
        "previous": args.previous,
        "line_count": len(kept),
        "redactions": redactions,
        "lines": kept,
    }
    return Answer(data, query=query, truncations=cuts, empty=not kept)
