"""The layout's rules (docs/architecture.md): imports only go down the floors of ``monitor/``,
``alerts`` and ``detectors`` never import ``monitor``, and no module imports itself in a
cycle."""

from __future__ import annotations

import logging
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "driftwarden.core",
    "driftwarden.detectors",
    "driftwarden.alerts",
    "driftwarden.monitor",
)


def test_the_import_contracts_are_kept(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    loggers = logging.root.manager.loggerDict.values()
    enabled = [one for one in loggers if isinstance(one, logging.Logger) and not one.disabled]
    try:
        assert lint_imports(config_filename="pyproject.toml", no_cache=True) == 0
    finally:  # its logging configuration disables the loggers that exist, ours included
        for logger in enabled:
            logger.disabled = False


def test_no_import_cycle_among_the_modules() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back is not None:
                cycles.append((module, *back))
    assert cycles == []
