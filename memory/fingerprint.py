"""Fingerprints: an incident's normalised symptoms, as a set of `facet:value` tokens.

Memory compares incidents by these tokens, not by names alone, so that "the
same kind of failure on another service" looks alike: the signals (oom_killed,
no_endpoints), Kubernetes reasons (OOMKilled, CrashLoopBackOff) and log
templates with their variable parts masked carry over from one service to
another, while the alert's labels and the workload say where it happened.

Two groups of facets, compared separately (see `split_groups`):
- intake facets, known as soon as an alert or a question arrives: the alert's
  name and labels, the namespace, the workload and its kind, reasons named in
  the alert's text or the question;
- evidence facets, known once the specialists have looked: signals, reasons
  from pod status and events, the top error log templates, the kinds of the
  components that misbehaved.

Every input here (alert labels, annotations, questions, log lines) is
untrusted text; it only ever becomes a bounded, normalised token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from state import Evidence, Incident, LogFindings

#: Facets known at intake; everything else is an evidence facet.
INTAKE_FACETS = frozenset({"alert", "label", "namespace", "workload", "workload_kind", "reason"})
#: Facets that only evidence gives.
EVIDENCE_FACETS = frozenset({"signal", "status", "template", "subject_kind", "dependency"})

#: Alert labels that identify one series or pod rather than the failure (they change every
#: time the same failure recurs), so they would only make the same failure look different.
_VOLATILE_LABELS = frozenset(
    {
        "alertname",
        "namespace",
        "pod",
        "pod_name",
        "instance",
        "uid",
        "container_id",
        "pod_template_hash",
        "endpoint",
        "prometheus",
        "prometheus_replica",
        "receive",
        "replica",
        "id",
        "le",
        "quantile",
    }
)

#: Kubernetes reasons worth remembering: container waiting/termination reasons, pod phases
#: and event reasons that name a kind of failure (kubelet, scheduler and controller docs).
_REASONS = (
    "OOMKilled",
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "ContainerCannotRun",
    "DeadlineExceeded",
    "Evicted",
    "Preempting",
    "FailedScheduling",
    "FailedCreate",
    "FailedMount",
    "FailedAttachVolume",
    "Unhealthy",
    "ProbeError",
    "BackOff",
    "NodeNotReady",
    "NodeHasDiskPressure",
    "NodeHasMemoryPressure",
    "ProgressDeadlineExceeded",
    "FailedGetResourceMetric",
    "ExceededQuota",
)
_REASON_RE = re.compile(r"\b(" + "|".join(_REASONS) + r")\b")
#: Words in free text (an alert's summary, a question) that name a kind of symptom.
_TEXT_SYMPTOMS = {
    "oom": re.compile(r"\b(oom|out of memory|memory limit)\b", re.I),
    "crash_loop": re.compile(r"\b(crash[- ]?loop\w*|crashing|restarts?)\b", re.I),
    "latency": re.compile(r"\b(latency|slow|p9\d|timeouts?)\b", re.I),
    "errors": re.compile(r"\b(error[- ]?rate|errors?|5\d\d|failing|failures?)\b", re.I),
    "pending": re.compile(r"\b(pending|unschedulable)\b", re.I),
    "replicas": re.compile(r"\b(replicas?|unavailable|not ready)\b", re.I),
    "image": re.compile(r"\b(image ?pull|pull ?back ?off|manifest unknown)\b", re.I),
}

#: Longest token kept; longer values are cut (a template is identified by its start).
_MAX_TOKEN = 160
#: Error templates per incident that go into its fingerprint (the most frequent first).
TOP_TEMPLATES = 5

_IP_PORT = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b")
_HEX = re.compile(r"\b(?:0x)?[0-9a-f]{8,}\b", re.I)
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_NUMBER = re.compile(r"(?<![a-z])\d+(?:\.\d+)?(?:ms|s|m|h|mi|gi|ki|%)?\b", re.I)
_WILDCARD = re.compile(r"<[^<>\s]{0,20}>")
_SPACES = re.compile(r"\s+")
_TIMESTAMP = re.compile(
    r"\b\d{4}-\d{2}-\d{2}[t ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:z|[+-]\d{2}:?\d{2})?\b", re.I
)


def _clean(value: str) -> str:
    """One line, no control characters, bounded: untrusted text made into a token value."""
    text = "".join(ch if ch.isprintable() else " " for ch in value)
    return _SPACES.sub(" ", text).strip()[:_MAX_TOKEN]


def token(facet: str, value: str) -> str:
    return f"{facet}:{_clean(value)}"


def facet_of(tok: str) -> str:
    return tok.split(":", 1)[0]


def normalise_template(template: str) -> str:
    """A log template with its variable parts masked: addresses, ids, numbers, timestamps."""
    text = _TIMESTAMP.sub("<*>", template)
    text = _UUID.sub("<*>", text)
    text = _IP_PORT.sub("<*>", text)
    text = _HEX.sub("<*>", text)
    text = _NUMBER.sub("<*>", text)
    text = _WILDCARD.sub("<*>", text)
    return _clean(text.lower())


def reasons_in(text: str) -> list[str]:
    """Kubernetes reasons that a piece of text names, in order, without repeats."""
    return list(dict.fromkeys(_REASON_RE.findall(text)))


def text_symptoms(text: str) -> list[str]:
    """Symptom words named in free text (an alert's summary, a person's question)."""
    return [name for name, pattern in _TEXT_SYMPTOMS.items() if pattern.search(text)]


def incident_symptoms(incident: Incident) -> list[str]:
    """The intake facets: what is known of an incident before any evidence."""
    tokens: list[str] = []
    alert = incident.alert
    if alert is not None:
        name = alert.labels.get("alertname", "")
        if name:
            tokens.append(token("alert", name))
        for key, value in sorted(alert.labels.items()):
            if key not in _VOLATILE_LABELS and value:
                tokens.append(token("label", f"{key}={value}"))
        text = " ".join(alert.annotations.get(k, "") for k in ("summary", "description"))
        tokens += [token("reason", r) for r in reasons_in(text)]
        tokens += [token("reason", s) for s in text_symptoms(text)]
    if incident.question:
        tokens += [token("reason", r) for r in reasons_in(incident.question)]
        tokens += [token("reason", s) for s in text_symptoms(incident.question)]
    if incident.namespace:
        tokens.append(token("namespace", incident.namespace))
    if incident.workload is not None:
        tokens.append(token("workload_kind", incident.workload.kind))
        tokens.append(token("workload", f"{incident.workload.kind}/{incident.workload.name}"))
    return _unique(tokens)


def _strings(data: Mapping[str, Any], depth: int = 0) -> Iterable[str]:
    """The string values of an evidence item's data, a few levels deep."""
    if depth > 3:
        return
    for value in data.values():
        if isinstance(value, str):
            yield value
        elif isinstance(value, Mapping):
            yield from _strings(value, depth + 1)
        elif isinstance(value, list):
            for item in value[:20]:
                if isinstance(item, str):
                    yield item
                elif isinstance(item, Mapping):
                    yield from _strings(item, depth + 1)


#: Evidence below this severity is context (a healthy baseline), not a symptom.
SYMPTOM_SEVERITY = 0.3


def evidence_symptoms(
    evidence: Iterable[Evidence], log_findings: LogFindings | None = None
) -> list[str]:
    """The evidence facets: signals, reasons, kinds of the misbehaving components, top templates."""
    tokens: list[str] = []
    for item in evidence:
        if item.severity < SYMPTOM_SEVERITY:
            continue
        tokens.append(token("signal", item.signal))
        tokens.append(token("subject_kind", item.subject.kind))
        for text in (item.summary, *_strings(item.data)):
            tokens += [token("reason", r) for r in reasons_in(text)]
    if log_findings is not None:
        templates = [
            t
            for w in log_findings.workloads
            for t in w.templates
            if t.new or t.level in ("error", "fatal")
        ]
        templates.sort(key=lambda t: (-int(t.new), -t.count))
        for t in templates[:TOP_TEMPLATES]:
            tokens.append(token("template", normalise_template(t.template)))
            tokens += [token("reason", r) for r in reasons_in(t.template)]
            if t.dependency:
                # The dependency's role, not its address: the host's first DNS label.
                host = _IP_PORT.sub("", t.dependency).split(":")[0].split(".")[0]
                if host:
                    tokens.append(token("dependency", host.lower()))
    return _unique(tokens)


def record_fingerprint(
    incident: Incident, evidence: Iterable[Evidence], log_findings: LogFindings | None
) -> list[str]:
    """A finished incident's fingerprint: its intake facets and its evidence facets."""
    return _unique(incident_symptoms(incident) + evidence_symptoms(evidence, log_findings))


def split_groups(tokens: Iterable[str]) -> dict[str, set[str]]:
    """Tokens by group: "intake" and "evidence" (empty groups left out)."""
    groups: dict[str, set[str]] = {}
    for tok in tokens:
        group = "intake" if facet_of(tok) in INTAKE_FACETS else "evidence"
        groups.setdefault(group, set()).add(tok)
    return groups


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 0.0
    return len(a & b) / len(a | b)


def similarity(query: Iterable[str], fingerprint: Iterable[str]) -> float:
    """How alike two fingerprints are, over the groups the query has (0 to 1).

    Each group's Jaccard index, weighted by the query's tokens in that group: a query made
    at intake (alert facets only) is compared with the past incidents' intake facets, one
    made with evidence with both.
    """
    q = split_groups(query)
    f = split_groups(fingerprint)
    total = sum(len(tokens) for tokens in q.values())
    if total == 0:
        return 0.0
    return sum(len(tokens) * jaccard(tokens, f.get(g, set())) for g, tokens in q.items()) / total


def _unique(tokens: list[str]) -> list[str]:
    return list(dict.fromkeys(t for t in tokens if not t.endswith(":")))
