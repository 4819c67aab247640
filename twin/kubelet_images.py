"""Images as containerd reports them, and the kubelet's back-off bookkeeping.

No image is ever pulled: an image's size and digest are derived from its
name, so the same image is the same size on every node and in every run, and
the pull takes as long as that size takes over a typical registry link. The
`Backoff` class is client-go's flowcontrol.Backoff, which the kubelet uses for
both image pulls and container restarts (CrashLoopBackOff).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

#: Registry throughput while pulling, bytes per second.
PULL_BYTES_PER_SECOND = 40e6
#: Resolving the reference and setting up the pull.
PULL_OVERHEAD_SECONDS = 0.4
#: A pull of an image that is already on the node (imagePullPolicy: Always):
#: only the manifest is fetched.
REPULL_SECONDS = 0.45
#: How long the registry takes to answer "not found".
PULL_NOT_FOUND_SECONDS = 0.6


def split_image(image: str) -> tuple[str, str, str]:
    """(repository, tag, digest) of an image reference; tag and digest may be empty."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :], digest
    return name, "", digest


def normalize_image(image: str) -> str:
    """The fully qualified reference containerd uses (`redis:alpine` -> docker.io/library/...)."""
    repo, tag, digest = split_image(image)
    first, _, rest = repo.partition("/")
    if not rest:
        repo = f"docker.io/library/{repo}"
    elif not ("." in first or ":" in first or first == "localhost"):
        repo = f"docker.io/{repo}"
    ref = repo
    if tag:
        ref += f":{tag}"
    elif not digest:
        ref += ":latest"
    if digest:
        ref += f"@{digest}"
    return ref


def image_digest(image: str) -> str:
    """The image's content digest: the one it names, else a stable one from its name."""
    _, _, digest = split_image(image)
    if digest:
        return digest
    return "sha256:" + hashlib.sha256(normalize_image(image).encode()).hexdigest()


def image_id(image: str) -> str:
    """`imageID` of a container status: `<repository>@sha256:<digest>`."""
    repo, _, _ = split_image(normalize_image(image))
    return f"{repo}@{image_digest(image)}"


def image_size(image: str) -> int:
    """Unpacked size in bytes, between about 15 MB and 330 MB, fixed per image."""
    h = int.from_bytes(hashlib.sha256(split_image(image)[0].encode()).digest()[:8], "big")
    return 15_000_000 + h % 315_000_000


def pull_seconds(image: str) -> float:
    """How long pulling the image takes, to the millisecond."""
    return round(PULL_OVERHEAD_SECONDS + image_size(image) / PULL_BYTES_PER_SECOND, 3)


def default_pull_policy(image: str) -> str:
    """The API server's default: Always for `:latest` or untagged images, else IfNotPresent."""
    _, tag, digest = split_image(image)
    if digest:
        return "IfNotPresent"
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def not_found_error(image: str) -> str:
    """The CRI error containerd returns for a tag or repository that does not exist."""
    ref = normalize_image(image)
    return (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{ref}": '
        f'failed to resolve reference "{ref}": {ref}: not found'
    )


def go_duration_ms(seconds: float) -> str:
    """A duration truncated to milliseconds, printed as Go's time.Duration (812ms, 2.345s)."""
    ms = int(seconds * 1000 + 1e-6)
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    minutes, ms_rest = divmod(ms, 60_000)
    secs = f"{ms_rest // 1000}.{ms_rest % 1000:03d}".rstrip("0").rstrip(".") + "s"
    if minutes == 0:
        return secs
    hours, minutes = divmod(minutes, 60)
    return (f"{hours}h" if hours else "") + f"{minutes}m{secs}"


@dataclass
class Backoff:
    """One entry of client-go's flowcontrol.Backoff (the kubelet keys one per container/image).

    `initial` doubles on each `next` up to `cap`; an entry not updated for more
    than twice the cap (600 s for the kubelet's 300 s) starts over.
    """

    initial: float = 10.0
    cap: float = 300.0
    #: Current delay, None before the first failure.
    delay: float | None = None
    last_update: float = 0.0

    def _expired(self, event_time: float) -> bool:
        return event_time - self.last_update > 2 * self.cap

    def next(self, event_time: float) -> None:
        """Record a failure at `event_time`: the delay starts at `initial` or doubles."""
        if self.delay is None or self._expired(event_time):
            self.delay = self.initial
        else:
            self.delay = min(self.delay * 2, self.cap)
        self.last_update = event_time

    def in_backoff_since(self, event_time: float, now: float) -> bool:
        """IsInBackOffSince: still waiting `delay` after `event_time` (a container's finishedAt)."""
        if self.delay is None or self._expired(event_time):
            return False
        return now - event_time < self.delay

    def in_backoff_since_update(self, now: float) -> bool:
        """IsInBackOffSinceUpdate: still waiting `delay` after the last failure (image pulls)."""
        if self.delay is None or self._expired(now):
            return False
        return now - self.last_update < self.delay
