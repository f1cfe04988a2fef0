"""Every docstring example in driftwarden runs and prints what it says (one runner for all)."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import driftwarden.alerts
import driftwarden.core
import driftwarden.detectors
import driftwarden.monitor

PACKAGES = (driftwarden.core, driftwarden.detectors, driftwarden.alerts, driftwarden.monitor)


def _modules_with_examples() -> list[str]:
    found = []
    for package in PACKAGES:
        root = Path(package.__path__[0])
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            if "migrations" in parts or parts[-1] == "__init__":
                continue
            if package is driftwarden.monitor and parts[0] == "core":
                continue  # installed as driftwarden.core
            if ">>> " in path.read_text(encoding="utf-8"):
                found.append(".".join((package.__name__, *parts)))
    return sorted(found)


MODULES = _modules_with_examples()


def test_examples_are_found() -> None:
    assert "driftwarden.detectors.psi" in MODULES and len(MODULES) > 20


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    failures, tried = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert tried > 0
    assert failures == 0
