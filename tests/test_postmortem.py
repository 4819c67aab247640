"""Post-mortems from transcripts: Markdown, JSON (with its published schema) and HTML."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest

from interfaces.postmortem import (
    Postmortem,
    PostmortemError,
    build_postmortem,
    load_report,
    postmortem_schema,
    render_html,
    render_json,
    render_markdown,
    write_postmortems,
)
from state import IncidentReport
from tests.memory.factory import HOSTILE, cascade_state, oom_state

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "docs" / "postmortem.schema.json"


def _report(state_name: str = "cascade") -> IncidentReport:
    state = cascade_state() if state_name == "cascade" else oom_state("inc-oom")
    return IncidentReport.from_state(state)


def _written(tmp_path: Path, report: IncidentReport) -> Path:
    incident_dir = tmp_path / report.incident.id
    incident_dir.mkdir()
    (incident_dir / "transcript.json").write_text(report.model_dump_json(indent=2))
    return incident_dir


def test_the_published_schema_is_the_models_schema() -> None:
    published = json.loads(SCHEMA_FILE.read_text())
    assert published == json.loads(json.dumps(postmortem_schema())), (
        "docs/postmortem.schema.json is stale: regenerate it with "
        "`python -c 'import json; from interfaces.postmortem import postmortem_schema; "
        "print(json.dumps(postmortem_schema(), indent=2, sort_keys=True))'`"
    )
    jsonschema.Draft202012Validator.check_schema(published)


@pytest.mark.parametrize("which", ["cascade", "oom"])
def test_json_validates_against_the_published_schema(which: str) -> None:
    doc = json.loads(render_json(build_postmortem(_report(which))))
    jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).validate(doc)
    assert Postmortem.model_validate(doc).incident_id == doc["incident_id"]


def test_contents_of_a_post_mortem() -> None:
    pm = build_postmortem(_report())
    assert pm.outcome == "recovered"
    assert pm.root_cause is not None
    assert pm.root_cause.component == "Deployment/shop/redis-cart"
    assert [e.id for e in pm.root_cause.evidence] == ["dep-3", "log-1"]
    assert [h.component for h in pm.other_hypotheses] == ["Deployment/shop/cartservice"]
    # Impact: the alerted service first; users saw frontend's ratio, not cartservice's.
    assert pm.impact.affected_services[0] == "shop/frontend"
    assert "shop/cartservice" in pm.impact.affected_services
    assert pm.impact.error_budget.error_ratio == 0.32
    # From the earliest onset (100 s before intake) to the verified recovery (165 s after).
    assert pm.impact.duration_s == 265.0
    assert pm.impact.error_budget.bad_minutes == pytest.approx(0.32 * 265 / 60, abs=1e-3)
    assert pm.impact.error_budget.burned_fraction == pytest.approx(0.32 * 265 / 60 / 43.2, abs=1e-4)
    assert pm.detection.alert_name == "FrontendErrorBudgetBurn"
    assert pm.detection.time_to_detect_s == 72.0  # from the alert's start
    assert (pm.timings.detect_s, pm.timings.localize_s, pm.timings.mitigate_s) == (
        12.0,
        20.0,
        165.0,
    )
    [act] = pm.resolution.actions
    assert (act.action, act.decision, act.approved_by, act.status) == (
        "scale",
        "needs_approval",
        "ana via slack",
        "applied",
    )
    assert act.before == {"replicas": 0}
    assert act.after == {"replicas": 1}
    # Every transcript entry is on the timeline, in order, with its offset.
    assert len(pm.timeline) == 13
    assert [t.offset_s for t in pm.timeline] == sorted(t.offset_s for t in pm.timeline)
    kinds = {t.kind for t in pm.timeline}
    assert {"hypothesis", "decision", "approval", "api_call", "verification"} <= kinds
    assert pm.model_usage.input_tokens == 5200
    assert pm.model_usage.cost_usd == 0.0123
    types = {i.type for i in pm.action_items}
    assert {"prevent", "detect"} <= types
    assert any("source control" in i.description for i in pm.action_items)


def test_the_failing_path_runs_from_the_symptom_to_the_root_cause() -> None:
    graph = build_postmortem(_report()).service_graph
    assert graph.failing_path == [
        "Deployment/shop/frontend",
        "Service/shop/cartservice",
        "Deployment/shop/cartservice",
        "Service/shop/redis-cart",
        "Deployment/shop/redis-cart",
    ]
    on_path = {n.id for n in graph.nodes if n.on_failing_path}
    assert on_path == set(graph.failing_path)
    [root] = [n for n in graph.nodes if n.root_cause]
    assert root.id == "Deployment/shop/redis-cart"
    # A healthy branch of the graph is drawn but not highlighted.
    assert not any(e.on_failing_path for e in graph.edges if "productcatalog" in e.target)
    assert sum(e.on_failing_path for e in graph.edges) == 4


def test_markdown_follows_the_sre_template() -> None:
    md = render_markdown(build_postmortem(_report()))
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Impact",
        "## Root Causes",
        "## Trigger",
        "## Resolution",
        "## Detection",
        "## Action Items",
        "## Lessons Learned",
        "## Timeline",
        "## Supporting information",
    ]
    assert "**Summary**:" in md
    assert "### What went well" in md
    assert "### What went wrong" in md
    assert "| Action Item | Type | Owner | Priority |" in md


def _table_rows(md: str, header: str) -> list[str]:
    lines = md.splitlines()
    start = lines.index(header)
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def test_untrusted_text_is_inert_in_markdown() -> None:
    md = render_markdown(build_postmortem(_report()))
    assert "<script>" not in md
    assert "<img" not in md
    # Brackets escaped: no link is formed.
    assert re.search(r"(?<!\\)\]\(http://evil", md) is None
    assert "\\[click\\](http://evil.example/)" in md
    # A "|" in a log line does not break the timeline table: every row keeps its 5 cells.
    rows = _table_rows(md, "| Time | +offset | Node | Kind | What happened |")
    assert len(rows) == 13
    for row in rows:
        cells = row.replace("\\|", "").strip("|").split("|")
        assert len(cells) == 5, row


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") or name.startswith("on"):
                self.external.append(f"{tag} {name}={value}")


def test_html_is_self_contained_and_untrusted_text_inert() -> None:
    page = render_html(build_postmortem(_report()))
    parser = _Elements()
    parser.feed(page)
    assert "script" not in parser.tags
    assert "img" not in parser.tags
    assert parser.external == []
    assert "default-src 'none'" in page
    assert parser.tags.count("svg") == 2
    assert page.count('class="edge failing"') == 4
    assert 'class="node root-cause anomalous failing"' in page or (
        'class="node root-cause failing"' in page
    )
    # The hostile text is there, as text.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert HOSTILE not in page


def test_write_all_formats_next_to_the_transcript(tmp_path: Path) -> None:
    incident_dir = _written(tmp_path, _report("oom"))
    written = write_postmortems(incident_dir)
    assert [p.name for p in written] == ["postmortem.md", "postmortem.json", "postmortem.html"]
    doc = json.loads((incident_dir / "postmortem.json").read_text())
    assert doc["root_cause"]["cause_kind"] == "oom"
    # No dependency findings in this transcript: the graph is the root cause alone.
    [node] = doc["service_graph"]["nodes"]
    assert (node["id"], node["root_cause"]) == ("Deployment/shop/cartservice", True)
    assert doc["service_graph"]["edges"] == []
    assert 'data-id="Deployment/shop/cartservice"' in (incident_dir / "postmortem.html").read_text()
    assert load_report(incident_dir).incident.id == "inc-oom"


def test_a_missing_transcript_is_named(tmp_path: Path) -> None:
    with pytest.raises(PostmortemError, match=r"no transcript at .*nope/transcript\.json"):
        load_report(tmp_path / "nope" / "transcript.json")


def test_an_unfinished_incident_still_has_a_post_mortem() -> None:
    state = cascade_state("inc-open")
    state.executed, state.verifications, state.approvals = [], [], []
    state.outcome, state.mitigated_at = None, None
    pm = build_postmortem(IncidentReport.from_state(state))
    assert pm.impact.ongoing
    assert pm.resolution.mitigated_at is None
    assert pm.status.startswith("draft: unfinished")
    assert "Proposed but not carried out: scale" in pm.resolution.description
    assert pm.action_items[0].type == "mitigate"
    assert pm.action_items[0].priority == "P1"


def test_secrets_in_a_transcript_are_masked_in_every_format() -> None:
    state = cascade_state("inc-secret")
    token = (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    )
    state.evidence[3] = state.evidence[3].model_copy(
        update={"summary": f"connect redis://:hunter2@redis-cart:6379 failed, bearer {token}"}
    )
    pm = build_postmortem(IncidentReport.from_state(state))
    for text in (render_markdown(pm), render_json(pm), render_html(pm)):
        assert "hunter2" not in text
        assert token not in text


def test_a_file_that_is_not_a_transcript_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "transcript.json"
    bad.write_text('{"incident": 3}')
    with pytest.raises(PostmortemError, match=r"transcript\.json is not an incident transcript"):
        load_report(tmp_path)
