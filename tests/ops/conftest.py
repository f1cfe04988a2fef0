"""Fixtures of the operations tests: the tools that check the repository's ops files.

``promtool``, ``prometheus``, ``amtool`` (and ``prometheus-alertmanager``), ``psql`` and
``docker-compose`` come from Debian's packages (``.ci/run`` installs them). Where one is
missing the test is skipped with the reason, unless ``DRIFTWARDEN_REQUIRE_OPS_TOOLS=1`` (set by
``.ci/run``) turns the skip into a failure.
"""

from __future__ import annotations

import pytest
from support.ops import tool


@pytest.fixture(scope="session")
def promtool() -> str:
    return tool("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return tool("prometheus")


@pytest.fixture(scope="session")
def docker_compose() -> str:
    return tool("docker-compose")


@pytest.fixture(scope="session")
def amtool() -> str:
    return tool("amtool")


@pytest.fixture(scope="session")
def alertmanager_binary() -> str:
    return tool("prometheus-alertmanager")


@pytest.fixture(scope="session")
def psql() -> str:
    return tool("psql")
