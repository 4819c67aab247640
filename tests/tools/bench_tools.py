"""Benchmarks of the tools, for `make bench` (figures, not assertions).

`bench_logs()` seeds 100,000 log lines into one container of a twin served
over HTTP and times `get_pod_logs` reading them through the official client:
the tool must return the capped tail, say it capped, and do it fast.
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta
from typing import Any

from tests.tools.twinworld import World, serve_world
from tools.connection import connect
from tools.registry import Toolbox

LINES = 100_000


def seed_lines(world: World, pod_name: str, count: int, container: str = "server") -> None:
    cluster = world.cluster
    pod = cluster.store.get(cluster.rt("Pod"), "shop", pod_name)
    uid = pod["metadata"]["uid"]
    start = cluster.clock.now() - timedelta(seconds=count / 100)
    with cluster.lock:
        for i in range(count):
            cluster.logs.append(
                uid,
                container,
                start + timedelta(milliseconds=10 * i),
                f'{{"severity":"info","message":"GET /cart 200 {i % 97}ms","seq":{i}}}',
            )


def bench_logs(repeat: int = 5) -> dict[str, Any]:
    """Time get_pod_logs over 100,000 lines; returns the figures."""
    with serve_world() as world:
        seed_lines(world, world.healthy_pod, LINES)
        conn = connect(world.kubeconfig)
        box = Toolbox(cluster=conn)
        args = {"namespace": "shop", "pod": world.healthy_pod}
        timings = []
        result = None
        for _ in range(repeat):
            t0 = time.perf_counter()
            result = box.call("get_pod_logs", args)
            timings.append(time.perf_counter() - t0)
        conn.close()
    if result is None or result.status != "success":
        raise RuntimeError(f"get_pod_logs failed in the benchmark: {result}")
    return {
        "lines_in_container": LINES,
        "lines_returned": result.data["line_count"] if result.data else 0,
        "truncated": result.truncated,
        "caps": [t.model_dump() for t in result.truncations],
        "seconds_median": round(statistics.median(timings), 4),
        "seconds_max": round(max(timings), 4),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(bench_logs(), indent=2))
