"""Every Slack test starts from settings it gives itself, not from the environment."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("KUBEMEDIC_", "SLACK_")):
            monkeypatch.delenv(key)
