"""Cause kinds -> AIOpsLab categories (system level, fault type)."""

from __future__ import annotations

from agents import signals as sg


def test_config_level_and_operator_causes_get_their_own_categories() -> None:
    def cat(kind: str) -> tuple[str, str]:
        c = sg.category_for(kind)
        return (c.system_level, c.fault_type)

    # A NetworkPolicy blocking a dependency is a network issue of the platform.
    assert cat("network_policy") == ("Virtualization", "Network/Storage Issue")
    # Replicas lowered by an operator (not to zero) under load.
    assert cat("scaled_down") == ("Application", "Operation Error")
    # A probe set wrong in the spec kills a healthy process: configuration, not code.
    assert cat("probe_misconfigured") == ("Application", "Misconfiguration")
    assert cat("hang") == ("Application", "Code Defect")
    assert cat("scaled_to_zero") == ("Application", "Dependency Problem")
    # An unknown kind falls back to the table's default, never raises.
    assert cat("no-such-kind") == cat("unknown")
