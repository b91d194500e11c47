"""Shared fixtures. The embedded model servers start once per test session (about 5 s) and are
shared by every test that needs them, through `local_endpoints` and $WORKBENCH_LOCAL_ENDPOINTS
(which notebooks executed by papermill inherit)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.local import LOCAL_MODELS, serve
from workbench.session import ENDPOINTS_ENV


@pytest.fixture(scope="session")
def local_endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """{local model name: base_url} of freshly started llama.cpp servers for both models."""
    log_dir: Path = tmp_path_factory.mktemp("server-logs")
    with serve(list(LOCAL_MODELS), log_dir) as servers:
        endpoints = {name: s.base_url for name, s in servers.items()}
        old = os.environ.get(ENDPOINTS_ENV)
        os.environ[ENDPOINTS_ENV] = json.dumps(endpoints)
        try:
            yield endpoints
        finally:
            if old is None:
                os.environ.pop(ENDPOINTS_ENV, None)
            else:
                os.environ[ENDPOINTS_ENV] = old
