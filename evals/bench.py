"""`make bench`: the built-in suite for kubemedic and both baselines, the report, other figures.

    python -m evals.bench [--out .kubemedic/bench] [--workers N] [--agents kubemedic,noop,playbook]
                          [--kubemedic-workers 1] [--ablations no-critic,no-memory,generalist]
                          [--skip-figures] [--suite builtin|DIR]

Writes `<out>/<agent>.json` (each agent's summary), `<out>/report.md` with
`<out>/report-ttm.svg`, and `<out>/figures.json`, and prints the figures the
project reports besides the suite:

- the twin's list latency at scale: all pods of a 50-node, 2,000-pod,
  300-service cluster listed through the official client;
- how many simulated minutes the twin runs per wall second (shop, 30 minutes);
- the log tool's cap (`tests.tools.bench_tools.bench_logs`: 100,000 lines read
  through `get_pod_logs`);
- the median wall time of a deterministic `kubemedic run` per scenario (from the
  suite's kubemedic runs, one at a time by default so that they do not share the
  cores; the target is under 5 s each).

Ablations (`--ablations`) add a kubemedic column each; they are off by default
to keep `make bench` within about fifteen minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from evals.report import write_report
from evals.runner import SuiteRun, default_workers, run_suite, suite_files
from twin.harness import Twin
from twin.scenario import Scenario

DEFAULT_OUT = Path(".kubemedic/bench")
DEFAULT_AGENTS = ("kubemedic", "playbook", "noop")
#: The scale figure's cluster (SCENARIOS.md, "Scale").
SCALE_NODES, SCALE_DEPLOYMENTS, SCALE_REPLICAS, SCALE_SERVICES = 50, 100, 20, 300
#: A deterministic run per scenario should take less than this many wall seconds.
RUN_TARGET_S = 5.0


def scale_scenario() -> Scenario:
    """A quiet cluster of 50 nodes, 2,000 pods (100 Deployments x 20) and 300 Services."""
    manifests: list[dict[str, Any]] = []
    for i in range(SCALE_DEPLOYMENTS):
        labels = {"app": f"app{i}"}
        manifests.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": f"app{i}", "namespace": "bench", "labels": labels},
                "spec": {
                    "replicas": SCALE_REPLICAS,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "containers": [
                                {
                                    "name": "app",
                                    "image": "registry.example.com/bench/app:1",
                                    "ports": [{"containerPort": 8080}],
                                    "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}},
                                }
                            ]
                        },
                    },
                },
            }
        )
    for i in range(SCALE_SERVICES):
        manifests.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"svc{i}", "namespace": "bench"},
                "spec": {
                    "selector": {"app": f"app{i % SCALE_DEPLOYMENTS}"},
                    "ports": [{"port": 80, "targetPort": 8080}],
                },
            }
        )
    return Scenario.model_validate(
        {
            "apiVersion": "kubemedic.dev/v1",
            "kind": "Scenario",
            "metadata": {"name": "bench-scale", "description": "2,000 pods, 300 services"},
            "spec": {
                "nodes": {"count": SCALE_NODES, "cpu": 32, "memory": "128Gi"},
                "manifests": manifests,
                "horizon": "10m",
            },
        }
    )


def bench_list_latency(repeat: int = 5) -> dict[str, Any]:
    """List every pod of the scale cluster through the official client (kubemedic's connection)."""
    from tools.connection import ClusterConnection

    t0 = time.perf_counter()
    with Twin.start(scale_scenario()) as twin:
        build_s = time.perf_counter() - t0
        conn = ClusterConnection.from_kubeconfig(twin.kubeconfig_path)
        try:
            timings = []
            count = 0
            for _ in range(repeat):
                started = time.perf_counter()
                body = conn.call(conn.core.list_pod_for_all_namespaces)
                timings.append(time.perf_counter() - started)
                count = len(body.get("items") or [])
        finally:
            conn.close()
    return {
        "pods": count,
        "nodes": SCALE_NODES,
        "services": SCALE_SERVICES,
        "list_all_pods_s_median": round(statistics.median(timings), 3),
        "list_all_pods_s_first": round(timings[0], 3),
        "build_s": round(build_s, 1),
    }


def bench_sim_speed(minutes: float = 30.0) -> dict[str, Any]:
    """Simulated minutes per wall second on the shop app, healthy, for `minutes` of cluster time."""
    twin = Twin.build("healthy")
    started = time.perf_counter()
    twin.cluster.advance(minutes * 60)
    wall = time.perf_counter() - started
    return {
        "scenario": "healthy (shop)",
        "simulated_minutes": minutes,
        "wall_s": round(wall, 2),
        "sim_minutes_per_wall_s": round(minutes / wall, 1) if wall > 0 else None,
    }


def bench_log_cap() -> dict[str, Any]:
    """The log tool's cap over 100,000 lines (the tools' own benchmark)."""
    try:
        from tests.tools.bench_tools import bench_logs
    except ImportError as exc:  # an installed package without the tests
        return {"unavailable": f"tests.tools.bench_tools cannot be imported: {exc}"}
    figures: dict[str, Any] = bench_logs()
    return figures


def run_times(run: SuiteRun) -> dict[str, Any]:
    """Median and worst wall time of the kubemedic runs, and the scenarios over the target."""
    times = {r["scenario"]: float(r["wall_s"]) for r in run.records if r.get("wall_s") is not None}
    if not times:
        return {"runs": 0}
    slow = sorted((n for n, t in times.items() if t > RUN_TARGET_S), key=lambda n: -times[n])
    return {
        "runs": len(times),
        "median_s": round(statistics.median(times.values()), 2),
        "max_s": round(max(times.values()), 2),
        "target_s": RUN_TARGET_S,
        "over_target": [f"{n} ({times[n]:.1f}s)" for n in slow],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--suite", default="builtin")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--agents", default=",".join(DEFAULT_AGENTS))
    parser.add_argument(
        "--kubemedic-workers",
        type=int,
        default=1,
        help="workers for the kubemedic runs (1: uncontended wall times for the run figure)",
    )
    parser.add_argument("--ablations", default="", help="e.g. no-critic,no-memory,generalist")
    parser.add_argument("--skip-figures", action="store_true", help="only the suite and report")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    files = suite_files(args.suite)
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    runs = [(a, "none") for a in agents]
    runs += [("kubemedic", x.strip()) for x in args.ablations.split(",") if x.strip()]
    summaries = []
    figures: dict[str, Any] = {}
    t0 = time.monotonic()
    for agent, ablation in runs:
        label = agent if ablation == "none" else f"{agent}-{ablation}"
        workers = args.kubemedic_workers if agent == "kubemedic" else args.workers
        console.print(f"[bold]{label}[/]: {len(files)} scenarios, {workers} worker(s)")

        def done(record: dict[str, Any], n: int, total: int, label: str = label) -> None:
            ok = "pass" if record["score"].get("passed") else "FAIL"
            console.print(f"  [{n}/{total}] {label} {record['scenario']}: {ok}", highlight=False)

        run = run_suite(
            files,
            agent=agent,
            ablation=ablation,
            workers=workers,
            data_dir=out / "runs" / label,
            suite=str(args.suite),
            on_done=done,
        )
        summary = run.summary()
        (out / f"{label}.json").write_text(json.dumps(summary, indent=2, default=str))
        summaries.append(summary)
        if agent == "kubemedic" and ablation == "none":
            key = "kubemedic run wall time per scenario"
            if workers > 1:
                key += f" ({workers} runs at a time)"
            figures[key] = run_times(run)
    if not args.skip_figures:
        console.print("[bold]figures[/]: list latency at 2,000 pods, twin speed, log cap")
        figures["twin list latency (50 nodes, 2,000 pods, 300 services)"] = bench_list_latency()
        figures["twin speed (simulated minutes per wall second)"] = bench_sim_speed()
        figures["log tool cap (100,000 lines)"] = bench_log_cap()
    figures["benchmark wall time (s)"] = round(time.monotonic() - t0, 1)
    (out / "figures.json").write_text(json.dumps(figures, indent=2, default=str))
    report = write_report(summaries, out / "report.md", figures=figures)
    table = [
        (
            s["agent"] + ("" if s.get("ablation") in (None, "none") else f" ({s['ablation']})"),
            s.get("passed"),
            s.get("detection_accuracy"),
            s.get("localization_top1"),
            s.get("mitigation_rate"),
            s.get("safety_violations"),
        )
        for s in summaries
    ]
    print(json.dumps({"report": str(report), "agents": table, "figures": figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
