"""Shared fixtures.

- `wire`: one mock server per session speaking every wire format (workbench/serve/mock.py),
  reset before each test, with a canary key in the environment.
- `local_endpoints`: the embedded model servers, started once per session (about 5 s) and
  shared by every test that needs them, through the returned mapping and
  $WORKBENCH_LOCAL_ENDPOINTS (which notebooks executed by papermill inherit).
- `installed_tool`: the project's wheel installed once per session into a fresh venv with no
  checkout on the path (`tests/installed.py`).
- `ray_cluster`: one two-node Ray cluster on loopback for the whole session (tests marked `ray`;
  skipped, saying how to install it, without Ray).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.installed import Installed, install
from workbench.config import Contender
from workbench.embedded import LOCAL_MODELS
from workbench.serve.llama import serve
from workbench.serve.mock import MockServer
from workbench.session import ENDPOINTS_ENV

T = TypeVar("T")
KEY_ENV = "WB_TEST_KEY"
CANARY = "canary-7f3a9c1e-do-not-log-0123456789"


@pytest.fixture(scope="session")
def _wire_session() -> Iterator[MockServer]:
    with MockServer() as srv:
        yield srv


@pytest.fixture
def wire(_wire_session: MockServer, monkeypatch: pytest.MonkeyPatch) -> MockServer:
    _wire_session.reset()
    monkeypatch.setenv(KEY_ENV, CANARY)
    return _wire_session


def contender_for(fmt: str, srv: MockServer, **kw: Any) -> Contender:
    """A contender of wire format `fmt` pointed at the test server (generic declares SSE)."""
    spec: dict[str, Any] = {
        "name": f"t-{fmt}",
        "api": fmt,
        "model": {"anthropic": "claude-test", "gemini": "gemini-test"}.get(fmt, "test-model"),
        "base_url": srv.base_url_for(fmt),
        "api_key_env": KEY_ENV,
        "timeout_s": 5.0,
        "system_prompt": "Be brief.",
    }
    if fmt == "openai-completions":
        spec["prompt_template"] = "Q: {prompt}\nA:"
    if fmt == "generic":
        spec["options"] = {"stream": "sse"}
    for k, v in kw.items():
        if k == "options":
            spec["options"] = {**spec.get("options", {}), **v}
        else:
            spec[k] = v
    return Contender.model_validate(spec)


def run(coro: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
    """Run a coroutine with a hard deadline (every test is bounded in time)."""

    async def _bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(_bounded())


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


@pytest.fixture(scope="session")
def installed_tool(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return install(tmp_path_factory.mktemp("installed"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """A head and a second node on this machine (`ray.cluster_utils.Cluster`), one CPU each, dashboard
    off, a small object store, the GCS on a free port and every file under a temp dir of its own
    (`RAY_TMPDIR` too: Ray writes its "current cluster" note there, not in /tmp/ray). Started once
    per session (~10 s on 2 cores), stopped at its end."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'llm-workbench[ray]'")
    from ray.cluster_utils import Cluster

    temp = tempfile.mkdtemp(prefix="wb-ray-")
    old = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = temp
    os.makedirs(os.path.join(temp, "ray"), exist_ok=True)
    # The machine's own address, not 127.0.0.1: `ray.init` rewrites a loopback address to the node's
    # address before it connects, and a GCS bound to loopback would then never answer.
    node = {"num_cpus": 1, "include_dashboard": False, "object_store_memory": 80 * 1024 * 1024}
    c = Cluster(initialize_head=True, head_node_args={**node, "gcs_server_port": _free_port(), "temp_dir": temp})
    try:
        c.add_node(**node)
        c.wait_for_nodes()
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()
        if old is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = old
        shutil.rmtree(temp, ignore_errors=True)
