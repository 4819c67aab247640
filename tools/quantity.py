"""Kubernetes resource quantities ("250m", "128Mi", "1.5Gi", "12345n") as numbers."""

from __future__ import annotations

from state import format_bytes, format_cpu, parse_quantity

__all__ = ["format_bytes", "format_cpu", "parse_quantity"]
