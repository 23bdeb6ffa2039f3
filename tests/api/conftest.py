"""API tests share one real `nube serve` per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.harness import Nube


@pytest.fixture(scope="session")
def nube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nube]:
    server = Nube(tmp_path_factory.mktemp("nube") / "data")
    server.start()
    yield server
    server.stop()
