"""Node objects as a real kubelet registers them.

A scenario's nodes (`node-1` ... `node-N`) are created from `make_node`, so
`kubectl get nodes`, `kubectl describe node` and the scheduler see what a
cluster shows: the well-known labels, capacity and a slightly smaller
allocatable (the kubelet reserves some for the system and for eviction), the
four kubelet conditions, addresses, nodeInfo and a podCIDR the kubelet takes
pod IPs from. The kubelet (twin/kubelet.py) keeps the conditions' heartbeat
fresh; nothing here shows the twin's hidden state.

The quantity helpers are re-exported from twin.quantity so that code working
with nodes needs one import.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import uuid
import zlib
from typing import Any

from twin.clock import DEFAULT_EPOCH, rfc3339
from twin.quantity import format_cpu, format_memory, parse_cpu, parse_memory

__all__ = [
    "KUBELET_VERSION",
    "NODE_CONDITIONS",
    "format_cpu",
    "format_memory",
    "internal_ip",
    "make_node",
    "node_index",
    "parse_cpu",
    "parse_memory",
    "pod_cidr",
]

KUBELET_VERSION = "v1.32.4"
CONTAINER_RUNTIME_VERSION = "containerd://1.7.27"
KERNEL_VERSION = "6.8.0-59-generic"
OS_IMAGE = "Ubuntu 24.04.2 LTS"

#: The conditions a healthy kubelet posts, in the order a node shows them:
#: type -> (status, reason, message).
NODE_CONDITIONS: dict[str, tuple[str, str, str]] = {
    "MemoryPressure": (
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    "DiskPressure": ("False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    "PIDPressure": ("False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    "Ready": ("True", "KubeletReady", "kubelet is posting ready status"),
}

#: The kubelet's default hard eviction threshold (memory.available<100Mi).
EVICTION_HARD_MEMORY = 100 * 2**20
#: Root filesystem of the simulated nodes (about 97 GiB, as a typical cloud VM disk).
EPHEMERAL_STORAGE_KI = 101_430_960

_TRAILING_DIGITS = re.compile(r"(\d+)$")


def node_index(name: str) -> int:
    """A small number identifying a node: its name's trailing digits, else a stable hash."""
    m = _TRAILING_DIGITS.search(name)
    if m:
        return int(m.group(1))
    return zlib.crc32(name.encode()) % 200 + 50


def pod_cidr(index: int) -> str:
    """The /24 of 10.244.0.0/14 the node controller would give the index-th node."""
    second = 244 + index // 256
    return f"10.{second}.{index % 256}.0/24"


def internal_ip(index: int) -> str:
    """The node's address on the (simulated) VPC: 10.0.0.10 onwards."""
    return str(ipaddress.IPv4Address("10.0.0.10") + index)


def _cpu_reserved(cores: float) -> float:
    """kube-reserved CPU as the large managed offerings size it (GKE's table).

    6% of the first core, 1% of the next, 0.5% of the next two, 0.25% above four.
    """
    reserved = 0.06 * min(cores, 1.0)
    reserved += 0.01 * max(0.0, min(cores, 2.0) - 1.0)
    reserved += 0.005 * max(0.0, min(cores, 4.0) - 2.0)
    reserved += 0.0025 * max(0.0, cores - 4.0)
    return reserved


def _memory_reserved(size: int) -> int:
    """kube-reserved plus the eviction threshold: 5% of memory up to 1Gi, plus 100Mi."""
    return EVICTION_HARD_MEMORY + min(size // 20, 2**30)


def _stable_uuid(*parts: str) -> str:
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def make_node(
    name: str,
    *,
    cpu: str = "8",
    memory: str = "32Gi",
    pods: int = 110,
    labels: dict[str, str] | None = None,
    index: int | None = None,
    now: str | None = None,
) -> dict[str, Any]:
    """A Node object as a registered, Ready kubelet shows it.

    Args:
        name: the node's name (also its hostname label and Hostname address).
        cpu: CPU capacity, a Kubernetes quantity ("8", "3500m").
        memory: memory capacity ("32Gi").
        pods: the kubelet's max-pods.
        labels: extra labels, merged over the well-known ones.
        index: picks the podCIDR and InternalIP; by default the name's trailing digits.
        now: RFC 3339 time for the conditions; by default the clock's default epoch
            (the kubelet refreshes the heartbeat within 10 simulated seconds).
    """
    idx = node_index(name) if index is None else index
    cap_cpu = parse_cpu(cpu)
    cap_mem = parse_memory(memory)
    if cap_cpu <= 0:
        raise ValueError(f"node {name!r}: cpu capacity must be positive, got {cpu!r}")
    if cap_mem <= 0:
        raise ValueError(f"node {name!r}: memory capacity must be positive, got {memory!r}")
    alloc_cpu = cap_cpu - _cpu_reserved(cap_cpu)
    alloc_mem = cap_mem - _memory_reserved(cap_mem)
    stamp = now or rfc3339(DEFAULT_EPOCH)
    cidr = pod_cidr(idx)
    node_labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node-role.kubernetes.io/worker": "",
    }
    node_labels.update(labels or {})
    conditions = [
        {
            "type": ctype,
            "status": status,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
            "reason": reason,
            "message": message,
        }
        for ctype, (status, reason, message) in NODE_CONDITIONS.items()
    ]
    machine_id = hashlib.sha256(f"machine/{name}".encode()).hexdigest()[:32]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": node_labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": {
            "capacity": {
                "cpu": format_cpu(cap_cpu),
                "ephemeral-storage": f"{EPHEMERAL_STORAGE_KI}Ki",
                "hugepages-1Gi": "0",
                "hugepages-2Mi": "0",
                "memory": f"{cap_mem // 1024}Ki",
                "pods": str(pods),
            },
            "allocatable": {
                "cpu": _format_millicores(alloc_cpu),
                "ephemeral-storage": str(EPHEMERAL_STORAGE_KI * 1024 * 9 // 10),
                "hugepages-1Gi": "0",
                "hugepages-2Mi": "0",
                "memory": f"{alloc_mem // 1024}Ki",
                "pods": str(pods),
            },
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": internal_ip(idx)},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": machine_id,
                "systemUUID": _stable_uuid("system", name),
                "bootID": _stable_uuid("boot", name),
                "kernelVersion": KERNEL_VERSION,
                "osImage": OS_IMAGE,
                "containerRuntimeVersion": CONTAINER_RUNTIME_VERSION,
                "kubeletVersion": KUBELET_VERSION,
                # Not set by kubelets since v1.31 (DisableNodeKubeProxyVersion).
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "images": [],
        },
    }


def _format_millicores(cores: float) -> str:
    milli = round(cores * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"
