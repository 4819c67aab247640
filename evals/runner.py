"""Running a suite: every scenario file, with one agent, in parallel processes, into a summary.

`run_suite` runs each scenario of a suite (the built-in one, or any directory
of scenario files) `repeat` times with one agent: `kubemedic` through the
graph (interfaces/runner.py's `run_scenario`, deterministic unless a model is
configured), or a baseline (`noop`, `playbook`; `truth` replays the
scenario's own accepted actions, an upper bound). Each run happens in a
worker process with its own twin, so runs never share a cluster; the summary
has the figures of AIOpsLab's protocol plus safety (see `summarize`).
"""

from __future__ import annotations

import asyncio
import fnmatch
import multiprocessing
import os
import statistics
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from twin.scenario import builtin_dir, load_scenario
from twin.scoring import RunResult, score

Agent = Literal["kubemedic", "noop", "playbook", "truth"]
AGENTS: tuple[str, ...] = ("kubemedic", "noop", "playbook", "truth")
MODES: tuple[str, ...] = ("autonomous", "approve", "observe")
#: The benchmark's own scenarios, next to this file.
SUITE_DIR = Path(__file__).with_name("suite")


class SuiteError(ValueError):
    """A suite that cannot run: no such directory, no scenario, a duplicate name."""


def suite_files(suite: str | Path = "builtin") -> list[Path]:
    """The scenario files of a suite: `builtin` (the twin's and the benchmark's) or a directory."""
    if str(suite) == "builtin":
        dirs = [builtin_dir(), SUITE_DIR]
    else:
        path = Path(suite)
        if path.is_file():
            return [path]
        if not path.is_dir():
            raise SuiteError(f"suite {str(suite)!r} is neither 'builtin' nor a directory")
        dirs = [path]
    files = sorted(
        (p for d in dirs for p in d.iterdir() if p.suffix in (".yaml", ".yml")),
        key=lambda p: p.stem,
    )
    if not files:
        raise SuiteError(f"suite {str(suite)!r} has no scenario files (*.yaml)")
    seen: dict[str, Path] = {}
    for p in files:
        name = _scenario_name(p)
        if name in seen:
            raise SuiteError(f"scenario {name!r} is defined twice: {seen[name]} and {p}")
        seen[name] = p
    return files


def _scenario_name(path: Path) -> str:
    """metadata.name, read without validating the file (each run validates its own)."""
    try:
        # libyaml's loader when present: reading 50 files with the pure-Python one takes seconds.
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        return str(data["metadata"]["name"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return path.stem


def select(files: Sequence[Path], patterns: Sequence[str]) -> list[Path]:
    """The files whose scenario name (metadata.name) matches any glob; all without globs."""
    if not patterns:
        return list(files)
    chosen = [f for f in files if any(fnmatch.fnmatchcase(_scenario_name(f), p) for p in patterns)]
    if not chosen:
        raise SuiteError(f"no scenario matches {', '.join(map(repr, patterns))}")
    return chosen


@dataclass(frozen=True)
class Job:
    """One run: a scenario file, an agent, and how to run it."""

    path: str
    agent: str
    mode: str = "autonomous"
    ablation: str = "none"
    repeat: int = 0
    #: Where the kubemedic agent keeps this run's transcripts and checkpoints.
    data_dir: str = ".kubemedic/eval"
    #: Approve every action a person would be asked about (the eval has no person).
    approve: bool = True


# -- one run (in a worker process) ---------------------------------------------------------


def run_job(job: Job) -> dict[str, Any]:
    """Run one job and return its record (never raises: a crash is a failed record)."""
    t0 = time.monotonic()
    try:
        if job.agent == "kubemedic":
            record = _run_kubemedic(job)
        else:
            record = _run_baseline(job)
    except Exception as exc:  # one broken run must not sink the suite
        record = failed_record(job, f"{type(exc).__name__}: {exc}", traceback.format_exc())
    record.setdefault("wall_s", round(time.monotonic() - t0, 3))
    record.update(
        {"agent": job.agent, "mode": job.mode, "ablation": job.ablation, "repeat": job.repeat}
    )
    return record


def _run_baseline(job: Job) -> dict[str, Any]:
    from evals.baselines import Noop, Playbook, TruthReplay
    from evals.episode import Responder, run_episode

    responders: dict[str, Callable[[], Responder]] = {
        "noop": Noop,
        "playbook": Playbook,
        "truth": TruthReplay,
    }
    if job.agent not in responders:
        raise ValueError(f"unknown agent {job.agent!r}; choose one of {', '.join(AGENTS)}")
    if job.mode == "observe" and job.agent != "noop":
        # Observe mode never writes: a baseline then only looks.
        raise ValueError("baselines act directly; observe mode applies to kubemedic only")
    result = run_episode(job.path, responders[job.agent]())
    out = result.as_dict()
    out["wall_s"] = round(result.result.wall_s, 3)
    out["tokens"] = {"input": 0, "output": 0}
    out["steps"] = result.result.steps
    out["tool_calls"] = result.result.tool_calls
    return out


def _run_kubemedic(job: Job) -> dict[str, Any]:
    import inspect

    from evals.ablations import get_ablation
    from interfaces import runner
    from settings import Settings

    ablation = get_ablation(job.ablation)
    name = load_scenario(job.path).name
    data_dir = Path(job.data_dir) / f"{name}-{job.repeat}"
    overrides: dict[str, Any] = {"data_dir": data_dir, "policy": {"mode": job.mode}}
    overrides.update(dict(ablation.settings))
    base = Settings()
    merged = base.model_dump()
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    settings = Settings.model_validate(merged)
    approver = runner.approve_all(by="kubemedic-eval", via="api") if job.approve else None
    params = inspect.signature(runner.run_scenario).parameters
    kwargs: dict[str, Any] = {"mode": job.mode, "settings": settings, "approver": approver}
    if ablation.nodes and "nodes" not in params:
        report = asyncio.run(
            _run_with_nodes(job.path, job.mode, settings, approver, dict(ablation.nodes))
        )
    else:
        if ablation.nodes:
            kwargs["nodes"] = dict(ablation.nodes)
        run = asyncio.run(runner.run_scenario(job.path, **kwargs))
        report = dict(run.report)
    return {
        "scenario": report.get("scenario", name),
        "path": job.path,
        "alert_s": None,
        "detected": report.get("detected"),
        "root_causes": report.get("root_causes", []),
        "category": report.get("category"),
        "actions": report.get("actions", []),
        "recovered": report.get("recovered"),
        "recovered_at_s": report.get("recovered_at_s"),
        "score": report["score"],
        "notes": [],
        "error": "",
        "wall_s": report.get("wall_seconds"),
        "tokens": report.get("tokens", {"input": 0, "output": 0}),
        "steps": report.get("steps", 0),
        "tool_calls": report.get("tool_calls", 0),
        "outcome": report.get("outcome"),
        "transcript_path": report.get("transcript_path"),
    }


async def _run_with_nodes(
    path: str, mode: str, settings: Any, approver: Any, nodes: dict[str, Any]
) -> dict[str, Any]:
    """`interfaces.runner.run_scenario` with graph nodes replaced (for the ablations).

    A stand-in built from the runner's own public steps, used only while
    `run_scenario` takes no `nodes=` argument; it follows the same sequence:
    twin to its alert, the graph on a checkpointer, the twin on to recovery or
    the horizon, then the report and score.
    """
    from agents.intake import new_incident_id
    from graph import compile_graph
    from interfaces import runner
    from interfaces.checkpoints import open_checkpointer
    from interfaces.clock import TwinClock
    from twin.harness import Twin

    sc = load_scenario(path)
    wall0 = time.monotonic()
    approver = approver or runner.reject_all("no person is available (non-interactive run)")
    with Twin.start(sc) as twin:
        clock = TwinClock(twin)
        incident_id = new_incident_id(f"{sc.name}-{clock.now().strftime('%H%M%S')}")
        first, _fired = runner.scenario_input(twin, mode, incident_id)  # type: ignore[arg-type]
        box = runner.twin_toolbox(twin, clock)
        try:
            async with (
                runner.agent_context(settings, box, clock) as ctx,
                open_checkpointer(settings) as saver,
            ):
                graph = compile_graph(saver, nodes=nodes)
                run = await runner.drive(
                    graph, {"input": first}, thread_id=incident_id, ctx=ctx, approver=approver
                )
        finally:
            runner.close_toolbox(box)
        remaining = twin.horizon - twin.sim_seconds
        if remaining > 0 and not twin.recovered():
            twin.advance_until(twin.oracle.holds, remaining)
        recovered = twin.recovered()
        since = twin.oracle.recovered_since(twin.cluster) if recovered else None
        return runner.build_report(
            twin,
            run,
            scenario_name=sc.name,
            mode=mode,  # type: ignore[arg-type]
            recovered=recovered,
            recovered_at_s=since,
            tool_calls=box.calls,
            wall_s=time.monotonic() - wall0,
            settings=settings,
        )


def failed_record(job: Job, error: str, detail: str = "") -> dict[str, Any]:
    """The record of a run that crashed: every axis failed, the error said."""
    try:
        sc = load_scenario(job.path)
        name, expect = sc.name, sc.truth.expect
        scored = score(sc, RunResult()).as_dict()
    except Exception as exc:  # the scenario itself does not load
        name, expect = Path(job.path).stem, "recover"
        scored = {"why": {"scenario": str(exc)}}
    for axis in ("detection", "mitigation", "safety"):
        scored[axis] = False
    for axis in ("localization_top1", "localization_top3", "category"):
        if scored.get(axis) is not None:
            scored[axis] = False
    scored["passed"] = False
    scored["expect"] = expect
    scored.setdefault("why", {})["error"] = error
    return {
        "scenario": name,
        "path": job.path,
        "score": scored,
        "error": error,
        "traceback": detail[-4000:],
        "actions": [],
        "root_causes": [],
        "tokens": {"input": 0, "output": 0},
    }


# -- the suite ---------------------------------------------------------------------------


@dataclass
class SuiteRun:
    """The records of a suite run, and its summary."""

    suite: str
    agent: str
    mode: str
    ablation: str
    repeat: int
    records: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        return summarize(
            self.records,
            suite=self.suite,
            agent=self.agent,
            mode=self.mode,
            ablation=self.ablation,
            repeat=self.repeat,
            wall_s=self.wall_s,
        )


def default_workers() -> int:
    """One worker per core (each run is one CPU-bound twin plus its API server thread)."""
    return max(1, os.cpu_count() or 1)


def run_suite(
    files: Sequence[Path],
    *,
    agent: str = "kubemedic",
    mode: str = "autonomous",
    ablation: str = "none",
    repeat: int = 1,
    workers: int | None = None,
    data_dir: Path = Path(".kubemedic/eval"),
    suite: str = "builtin",
    on_done: Callable[[dict[str, Any], int, int], None] | None = None,
) -> SuiteRun:
    """Run every file `repeat` times with `agent`; `on_done(record, done, total)` after each."""
    if agent not in AGENTS:
        raise ValueError(f"unknown agent {agent!r}; choose one of {', '.join(AGENTS)}")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if ablation != "none" and agent != "kubemedic":
        raise ValueError("ablations apply to the kubemedic agent only")
    jobs = [
        Job(str(p), agent, mode, ablation, k, str(data_dir))
        for k in range(max(1, repeat))
        for p in files
    ]
    run = SuiteRun(suite=suite, agent=agent, mode=mode, ablation=ablation, repeat=repeat)
    t0 = time.monotonic()
    n = max(1, min(workers or default_workers(), len(jobs)))
    records: list[dict[str, Any]] = []
    if n == 1:
        for job in jobs:
            records.append(run_job(job))
            if on_done:
                on_done(records[-1], len(records), len(jobs))
    else:
        # spawn: workers start clean (no inherited threads or open sockets from the parent).
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
            futures: list[Future[dict[str, Any]]] = [pool.submit(run_job, j) for j in jobs]
            for fut, job in _as_completed(futures, jobs):
                try:
                    record = fut.result()
                except Exception as exc:  # the worker process itself died
                    record = failed_record(job, f"worker failed: {type(exc).__name__}: {exc}")
                    record.update(
                        {
                            "agent": job.agent,
                            "mode": job.mode,
                            "ablation": job.ablation,
                            "repeat": job.repeat,
                        }
                    )
                records.append(record)
                if on_done:
                    on_done(record, len(records), len(jobs))
    order = {(j.path, j.repeat): i for i, j in enumerate(jobs)}
    records.sort(key=lambda r: order.get((r.get("path", ""), r.get("repeat", 0)), 0))
    run.records = records
    run.wall_s = round(time.monotonic() - t0, 2)
    return run


def _as_completed(
    futures: list[Future[dict[str, Any]]], jobs: list[Job]
) -> Iterable[tuple[Future[dict[str, Any]], Job]]:
    from concurrent.futures import as_completed

    index = {id(f): j for f, j in zip(futures, jobs, strict=True)}
    for fut in as_completed(futures):
        yield fut, index[id(fut)]


# -- the summary ------------------------------------------------------------------------------


def _rate(values: Iterable[bool | None]) -> float | None:
    """Share of True among the values that apply (None: the axis does not apply)."""
    vals = [v for v in values if v is not None]
    return round(sum(1 for v in vals if v) / len(vals), 4) if vals else None


def _median(values: Iterable[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return round(statistics.median(vals), 2) if vals else None


def summarize(
    records: Sequence[dict[str, Any]],
    *,
    suite: str,
    agent: str,
    mode: str = "autonomous",
    ablation: str = "none",
    repeat: int = 1,
    wall_s: float | None = None,
) -> dict[str, Any]:
    """The suite's figures over every run, and one entry per scenario.

    - detection_accuracy: runs whose detection matched the truth (fault or not);
    - false_positive_rate: among runs of no-fault scenarios, those that reported a fault;
    - localization_top1/top3, category_accuracy: among runs of scenarios with a root cause;
    - mitigation_rate: runs whose mitigation axis passed (recovered; escalated without a write;
      nothing written when nothing was needed);
    - safety_violations: runs with at least one violation (each is listed in its result);
    - median_sim_ttm_s: median simulated seconds to mitigation, over mitigated `recover` runs;
    - pass_all_k (with repeat > 1): scenarios that passed every one of their runs.
    """
    scores = [r["score"] for r in records]
    no_fault = [s for s in scores if s.get("expect") == "nothing"]
    tokens = [
        int((r.get("tokens") or {}).get("input", 0)) + int((r.get("tokens") or {}).get("output", 0))
        for r in records
    ]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_name.setdefault(r["scenario"], []).append(r)
    results = []
    for name, runs in by_name.items():
        first = runs[0]["score"]
        entry: dict[str, Any] = {
            "name": name,
            "path": runs[0].get("path", ""),
            "expect": first.get("expect"),
            "passed": all(r["score"].get("passed") for r in runs),
        }
        for axis in (
            "detection",
            "false_positive",
            "localization_top1",
            "localization_top3",
            "category",
            "mitigation",
            "safety",
        ):
            vals = [r["score"].get(axis) for r in runs]
            entry[axis] = vals[0] if len(vals) == 1 else _rate(vals)
        entry["ttm_s"] = _median(r["score"].get("ttm_s") for r in runs)
        entry["wall_s"] = _median(r.get("wall_s") for r in runs)
        entry["tokens"] = sum(
            int((r.get("tokens") or {}).get("input", 0))
            + int((r.get("tokens") or {}).get("output", 0))
            for r in runs
        ) // max(1, len(runs))
        entry["actions"] = [
            f"{a['action']} {_obj(a['target'])} ({a.get('status')})"
            for a in runs[0].get("actions") or []
        ]
        entry["root_causes"] = [_obj(c) for c in (runs[0].get("root_causes") or [])[:3]]
        entry["why"] = {k: v for r in runs for k, v in (r["score"].get("why") or {}).items()}
        entry["safety_violations"] = sorted(
            {v for r in runs for v in r["score"].get("safety_violations") or []}
        )
        errors = [r.get("error") for r in runs if r.get("error")]
        if errors:
            entry["error"] = errors[0]
        if len(runs) > 1:
            entry["runs"] = len(runs)
            entry["passes"] = sum(1 for r in runs if r["score"].get("passed"))
        results.append(entry)
    summary: dict[str, Any] = {
        "suite": suite,
        "agent": agent,
        "mode": mode,
        "ablation": ablation,
        "scenarios": len(by_name),
        "runs": len(records),
        "passed": _rate(s.get("passed") for s in scores),
        "detection_accuracy": _rate(s.get("detection") for s in scores),
        "false_positive_rate": _rate(s.get("false_positive") for s in no_fault),
        "localization_top1": _rate(s.get("localization_top1") for s in scores),
        "localization_top3": _rate(s.get("localization_top3") for s in scores),
        "category_accuracy": _rate(s.get("category") for s in scores),
        "mitigation_rate": _rate(s.get("mitigation") for s in scores),
        "safety_violations": sum(1 for s in scores if not s.get("safety", True)),
        "median_sim_ttm_s": _median(s.get("ttm_s") for s in scores),
        "median_wall_s": _median(r.get("wall_s") for r in records),
        "tokens_per_incident": round(sum(tokens) / len(tokens), 1) if tokens else 0.0,
        "errors": sum(1 for r in records if r.get("error")),
    }
    if repeat > 1:
        summary["repeat"] = repeat
        summary["pass_all_k"] = _rate(e["passed"] for e in results)
    if wall_s is not None:
        summary["wall_s"] = wall_s
    summary["results"] = results
    return summary


def _obj(ref: dict[str, Any]) -> str:
    ns = ref.get("namespace") or ""
    return f"{ref.get('kind')} {ns + '/' if ns else ''}{ref.get('name')}"


def job_dict(job: Job) -> dict[str, Any]:
    return asdict(job)
