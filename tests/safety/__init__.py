"""Tests of kubemedic's safety: the policy gate, the safety critic, approvals, budgets, audit."""
