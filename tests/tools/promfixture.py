"""OpenMetrics fixture data with known answers, and a real Prometheus loaded with it.

The series are simple enough to compute by hand: cartservice serves 10
requests/s that succeed and 1/s that fail with 503 (error ratio 1/11), its
latency histogram puts p50 at 12.5 ms and p99 at 493.75 ms, its container uses
100Mi of a 128Mi memory limit and 0.1 of a 0.2-core CPU limit, and restarts
once. `promtool tsdb create-blocks-from openmetrics` turns the file into TSDB
blocks; Prometheus serves them. The data ends three hours before now, since
promtool refuses samples that overlap the head block's time range.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

STEP = 15
DURATION = 3600

SHOP = {"destination_service_namespace": "shop", "destination_service_name": "cartservice"}
EDGE = {**SHOP, "source_workload": "frontend", "source_workload_namespace": "shop"}
FRONTEND = {
    "destination_service_namespace": "shop",
    "destination_service_name": "frontend",
    "source_workload": "unknown",
}
POD = {"namespace": "shop", "pod": "cartservice-5d8f7c9b4-x2k9p", "container": "server"}
#: Another workload whose name is a prefix of cartservice's pod: must never be matched.
OTHER_POD = {"namespace": "shop", "pod": "cart-7d9f8b6c5-abcde", "container": "server"}

#: Cumulative per-second rates of the duration histogram's buckets.
BUCKET_RATES = {
    "1": 0.0,
    "5": 2.0,
    "10": 5.0,
    "25": 8.0,
    "50": 9.0,
    "100": 10.0,
    "250": 10.5,
    "500": 10.9,
    "1000": 11.0,
    "+Inf": 11.0,
}
EXPECTED = {
    "request_rate": 11.0,
    "edge_request_rate": 11.0,
    "external_request_rate": 5.0,
    "error_ratio": 1.0 / 11.0,
    "p50": 12.5,
    "p99": 493.75,
    "memory_ratio": 100 / 128,
    "cpu_ratio": 0.5,
}


@dataclass(frozen=True)
class Fixture:
    start: datetime
    end: datetime


def _labels(d: dict[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in d.items())


def write_openmetrics(path: Path, end: datetime) -> Fixture:
    start = end - timedelta(seconds=DURATION)
    t0 = start.timestamp()
    stamps = [t0 + i * STEP for i in range(DURATION // STEP + 1)]
    lines: list[str] = []

    def family(name: str, series: list[tuple[dict[str, str], list[float]]]) -> None:
        lines.append(f"# TYPE {name} unknown")
        for labels, values in series:
            for ts, value in zip(stamps, values, strict=True):
                lines.append(f"{name}{{{_labels(labels)}}} {value:.6f} {ts:.3f}")

    def counter(rate: float, reset_at: int | None = None) -> list[float]:
        values = []
        for i in range(len(stamps)):
            base = i * STEP * rate
            if reset_at is not None and i >= reset_at:
                base = (i - reset_at) * STEP * rate
            values.append(base)
        return values

    n = len(stamps)
    requests = []
    for reporter, labels in (("destination", SHOP), ("source", EDGE)):
        requests.append(
            (
                {
                    **labels,
                    "reporter": reporter,
                    "response_code": "200",
                    "grpc_response_status": "0",
                },
                counter(9.5),
            )
        )
        # gRPC failure recorded with HTTP 200: counts as an error.
        requests.append(
            (
                {
                    **labels,
                    "reporter": reporter,
                    "response_code": "200",
                    "grpc_response_status": "14",
                },
                counter(0.5),
            )
        )
        # 0.5/s of 503s, with a counter reset halfway (a restarted sidecar).
        requests.append(
            (
                {
                    **labels,
                    "reporter": reporter,
                    "response_code": "503",
                    "grpc_response_status": "",
                },
                counter(0.5, reset_at=n // 2),
            )
        )
        requests.append(
            (
                {
                    **labels,
                    "reporter": reporter,
                    "response_code": "200",
                    "grpc_response_status": "",
                },
                counter(0.5),
            )
        )
    # Traffic from outside the mesh: only the server's sidecar reports it.
    requests.append(
        (
            {**FRONTEND, "reporter": "destination", "response_code": "200"},
            counter(5.0),
        )
    )
    family("istio_requests_total", requests)
    buckets = []
    for reporter, labels in (("destination", SHOP), ("source", EDGE)):
        for le, rate in BUCKET_RATES.items():
            buckets.append(({**labels, "reporter": reporter, "le": le}, counter(rate)))
    family("istio_request_duration_milliseconds_bucket", buckets)
    family(
        "container_memory_working_set_bytes",
        [(POD, [100 * 2**20] * n), (OTHER_POD, [127 * 2**20] * n)],
    )
    family("container_cpu_usage_seconds_total", [(POD, counter(0.1)), (OTHER_POD, counter(0.19))])
    family(
        "kube_pod_container_resource_limits",
        [
            ({**POD, "resource": "memory", "unit": "byte"}, [128 * 2**20] * n),
            ({**POD, "resource": "cpu", "unit": "core"}, [0.2] * n),
            ({**OTHER_POD, "resource": "memory", "unit": "byte"}, [128 * 2**20] * n),
            ({**OTHER_POD, "resource": "cpu", "unit": "core"}, [0.2] * n),
        ],
    )
    family(
        "kube_pod_container_status_restarts_total",
        [(POD, [0.0 if i < n // 2 else 1.0 for i in range(n)]), (OTHER_POD, [5.0] * n)],
    )
    lines.append("# EOF")
    path.write_text("\n".join(lines) + "\n")
    return Fixture(start=start, end=start + timedelta(seconds=DURATION))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningPrometheus:
    url: str
    fixture: Fixture


def start_prometheus(workdir: Path) -> Iterator[RunningPrometheus]:
    """Build blocks with promtool, run prometheus on them, stop it after the yield."""
    promtool = shutil.which("promtool")
    prometheus = shutil.which("prometheus")
    assert promtool
    assert prometheus
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    end = end - timedelta(seconds=end.second % STEP)
    data = workdir / "fixture.om"
    fixture = write_openmetrics(data, end)
    tsdb = workdir / "tsdb"
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(data), str(tsdb)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\n")
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tsdb}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=30d",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "prometheus did not start: " + (workdir / "prometheus.log").read_text()[-2000:]
                )
            time.sleep(0.1)
        yield RunningPrometheus(url=url, fixture=fixture)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
