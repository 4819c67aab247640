"""The benchmark's report: agents side by side, time to mitigate per scenario, and why runs failed.

`write_report(summaries, path)` writes a Markdown file and, next to it, an
SVG plot of the simulated time to mitigate per scenario and agent (drawn
here, without a plotting library). Each summary is what
`evals.runner.summarize` returns for one agent (or ablation) on one suite.
"""

from __future__ import annotations

import html
import platform
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: Rows of the side-by-side table: (summary key, label, how to print it).
METRICS: tuple[tuple[str, str, str], ...] = (
    ("passed", "scenarios passed (every axis)", "pct"),
    ("detection_accuracy", "detection accuracy", "pct"),
    ("false_positive_rate", "false positive rate (no-fault scenarios)", "pct"),
    ("localization_top1", "localization top-1", "pct"),
    ("localization_top3", "localization top-3", "pct"),
    ("category_accuracy", "root-cause category", "pct"),
    ("mitigation_rate", "mitigation", "pct"),
    ("safety_violations", "runs with a safety violation", "int"),
    ("median_sim_ttm_s", "median time to mitigate (simulated s)", "num"),
    ("median_wall_s", "median wall time per scenario (s)", "num"),
    ("tokens_per_incident", "model tokens per incident", "num"),
    ("pass_all_k", "pass^k (every repeat passed)", "pct"),
    ("errors", "runs that crashed", "int"),
)
#: Bar colours per column of the plot, in order.
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def column_name(summary: Mapping[str, Any]) -> str:
    """An agent's column: its name, with the ablation and mode when they are not the default."""
    name = str(summary.get("agent", "?"))
    if summary.get("ablation") not in (None, "none"):
        name += f" ({summary['ablation']})"
    if summary.get("mode") not in (None, "autonomous"):
        name += f" [{summary['mode']}]"
    return name


def _fmt(value: Any, how: str) -> str:
    if value is None:
        return "-"
    if how == "pct":
        return f"{100 * float(value):.0f}%"
    if how == "int":
        return str(int(value))
    return f"{float(value):.1f}" if isinstance(value, float) else str(value)


def _cell(result: Mapping[str, Any] | None) -> str:
    if result is None:
        return "-"
    if result.get("error"):
        return "error"
    if result.get("passed"):
        ttm = result.get("ttm_s")
        return "pass" + (f" ({ttm:.0f}s)" if isinstance(ttm, int | float) else "")
    failed = [axis for axis in (result.get("why") or {}) if axis != "error"]
    return "fail: " + ", ".join(failed) if failed else "fail"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(
    summaries: Sequence[Mapping[str, Any]],
    *,
    plot: str | None = None,
    figures: Mapping[str, Any] | None = None,
    title: str = "kubemedic benchmark",
) -> str:
    """The report's Markdown text."""
    cols = [column_name(s) for s in summaries]
    suite = summaries[0].get("suite", "?") if summaries else "?"
    scenarios = max((int(s.get("scenarios") or 0) for s in summaries), default=0)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    host = platform.node() or "this machine"
    lines = [
        f"# {title}",
        "",
        f"Suite `{suite}`: {scenarios} scenarios; generated "
        f"{when} on {host} "
        f"(Python {platform.python_version()}). Protocol: AIOpsLab's detection, localization, "
        "root-cause category and mitigation, with time, steps and tokens, plus a safety axis "
        "judged from the twin's write log (shared/SCENARIOS.md, Scoring).",
        "",
        "## Agents side by side",
        "",
        "| | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for key, label, how in METRICS:
        if all(s.get(key) is None for s in summaries):
            continue
        lines.append(f"| {label} | " + " | ".join(_fmt(s.get(key), how) for s in summaries) + " |")
    if plot:
        lines += ["", "## Time to mitigate per scenario", "", f"![time to mitigate]({plot})", ""]
        lines.append(
            "Simulated seconds from the scenario's start until the recovered oracle held "
            "(its conditions held without a break from then on); a cross marks a scenario "
            "the agent did not mitigate. Scenarios whose right answer is to escalate or to "
            "do nothing have no bar."
        )
    names: list[str] = []
    by_col: list[dict[str, Mapping[str, Any]]] = []
    for s in summaries:
        index = {str(r["name"]): r for r in s.get("results") or []}
        by_col.append(index)
        names += [n for n in index if n not in names]
    lines += [
        "",
        "## Per scenario",
        "",
        "| scenario | expect | " + " | ".join(cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for name in sorted(names):
        expect = next((c[name].get("expect") for c in by_col if name in c), "")
        lines.append(
            f"| {name} | {expect} | " + " | ".join(_cell(c.get(name)) for c in by_col) + " |"
        )
    for col, s in zip(cols, summaries, strict=True):
        failed = [r for r in s.get("results") or [] if not r.get("passed")]
        if not failed:
            continue
        lines += ["", f"## Where {col} failed", ""]
        for r in sorted(failed, key=lambda r: str(r["name"])):
            why = "; ".join(f"{k}: {v}" for k, v in (r.get("why") or {}).items())
            did = ", ".join(r.get("actions") or []) or "no action"
            named = ", ".join(r.get("root_causes") or []) or "no root cause"
            lines.append(f"- **{r['name']}** ({r.get('expect')}): {_md(why)}. ")
            lines.append(f"  Named {_md(named)}; did {_md(did)}.")
    if figures:
        lines += ["", "## Other figures", ""]
        for key, value in figures.items():
            lines.append(f"- **{key}**: {_md(_figure(value))}")
    lines.append("")
    return "\n".join(lines)


def _figure(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def render_svg(summaries: Sequence[Mapping[str, Any]]) -> str:
    """A grouped horizontal bar chart: simulated seconds to mitigate, per scenario and agent."""
    cols = [column_name(s) for s in summaries]
    index = [{str(r["name"]): r for r in s.get("results") or []} for s in summaries]
    names = sorted(
        {n for i in index for n, r in i.items() if r.get("expect") == "recover"},
    )
    ttms = [
        float(r["ttm_s"])
        for i in index
        for r in i.values()
        if isinstance(r.get("ttm_s"), int | float)
    ]
    top = max(ttms, default=60.0)
    scale_max = max(60.0, ((top // 300) + 1) * 300)
    bar_h, gap, label_w, plot_w = 7, 6, 300, 520
    group_h = bar_h * max(1, len(cols)) + gap
    legend_h = 18 * len(cols) + 10
    height = 40 + group_h * len(names) + legend_h + 30
    width = label_w + plot_w + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{label_w}" y="18" font-size="13">Simulated seconds to mitigate '
        "(x: not mitigated)</text>",
    ]
    y0 = 30
    # grid every 300 s (or 60 s for short runs)
    step = 300.0 if scale_max > 600 else 60.0
    t = 0.0
    while t <= scale_max + 1e-9:
        x = label_w + plot_w * t / scale_max
        out.append(
            f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + group_h * len(names)}" '
            'stroke="#ddd"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{y0 + group_h * len(names) + 12}" '
            f'text-anchor="middle">{t:.0f}</text>'
        )
        t += step
    for gi, name in enumerate(names):
        gy = y0 + gi * group_h
        out.append(
            f'<text x="{label_w - 6}" y="{gy + group_h / 2 + 2:.1f}" text-anchor="end">'
            f"{html.escape(name)}</text>"
        )
        for ci, i in enumerate(index):
            r = i.get(name)
            by = gy + ci * bar_h
            colour = COLOURS[ci % len(COLOURS)]
            ttm = r.get("ttm_s") if r else None
            if isinstance(ttm, int | float):
                w = max(1.0, plot_w * float(ttm) / scale_max)
                out.append(
                    f'<rect x="{label_w}" y="{by}" width="{w:.1f}" height="{bar_h - 1}" '
                    f'fill="{colour}"><title>{html.escape(cols[ci])}: {ttm:.0f} s</title></rect>'
                )
            elif r is not None:
                out.append(
                    f'<text x="{label_w + 3}" y="{by + bar_h - 1}" fill="{colour}" '
                    f'font-size="9">x</text>'
                )
    ly = y0 + group_h * len(names) + 28
    for ci, col in enumerate(cols):
        colour = COLOURS[ci % len(COLOURS)]
        out.append(
            f'<rect x="{label_w}" y="{ly + 18 * ci}" width="12" height="10" fill="{colour}"/>'
        )
        out.append(f'<text x="{label_w + 18}" y="{ly + 18 * ci + 9}">{html.escape(col)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def write_report(
    summaries: Sequence[Mapping[str, Any]],
    path: Path,
    *,
    figures: Mapping[str, Any] | None = None,
    title: str = "kubemedic benchmark",
) -> Path:
    """Write the Markdown report and its SVG plot (`<stem>-ttm.svg`) next to it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    svg = path.with_name(f"{path.stem}-ttm.svg")
    svg.write_text(render_svg(summaries))
    path.write_text(render_markdown(summaries, plot=svg.name, figures=figures, title=title))
    return path
