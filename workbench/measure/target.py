"""A target: one contender as one experiment reaches it — where its requests go, how each is recorded.

The session builds one per contender and experiment (`Session.target(contender)`), and the
probe and every load profile take it whole, so a parameter reaches the wire in few hands
instead of as keyword arguments carried by every experiment (base URL, run id, experiment,
streaming, ITL keeping, budget, ...).

The HTTP client is not part of it, on purpose (httpx's own client/transport split): a target is
a value, built once and copied freely; a client is an open connection pool bound to one event
loop, opened and closed around the requests of one experiment.

The target is also where a request's URL is checked (`check_url`): a hosted contender may only
be reached at its configured `base_url`, an embedded one only on the loopback interface (the
workbench binds its servers to 127.0.0.1). Loads only go to the configured endpoints.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from workbench.config import Contender
from workbench.errors import WorkbenchError
from workbench.types import Prompt, Record

if TYPE_CHECKING:
    from workbench.measure.budget import Budget

__all__ = ["DEFAULT_MAX_OUTPUT_CHARS", "LOOPBACK_HOSTS", "Target", "check_url"]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Output text kept on a record; longer answers are cut and flagged `output_truncated`, so a
# runaway stream cannot fill memory or the results file. Counting (chunks, tokens) goes on.
DEFAULT_MAX_OUTPUT_CHARS = 100_000


def check_url(contender: Contender, url: str) -> None:
    """Refuse to send a contender's requests anywhere but its own endpoint (raises WorkbenchError)."""
    if contender.base_url is not None:
        if url.rstrip("/") != contender.base_url.rstrip("/"):
            raise WorkbenchError(f"refusing to send {contender.name!r}'s requests to {url}: "
                                 f"its configured base_url is {contender.base_url}")
        return
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK_HOSTS:
        raise WorkbenchError(f"refusing to send {contender.name!r}'s requests to {url}: an embedded "
                             f"model is served on 127.0.0.1 only")


@dataclass(frozen=True)
class Target:
    """Everything but the prompt and the client that one request of one contender needs."""

    contender: Contender
    base_url: str
    run_id: str = "adhoc"
    experiment: str = "probe"
    stream: bool = True
    #: keep every inter-chunk gap on the record (large under load: the load profiles turn it off)
    keep_itl: bool = True
    #: spend cap shared by the experiment's requests (None: none)
    budget: Budget | None = None
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS
    #: transport headers the server needs (e.g. `Connection: close`), added to the provider's own
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        check_url(self.contender, self.base_url)

    @classmethod
    def hosted(cls, contender: Contender, **fields: Any) -> Target:
        """A target at the contender's own configured `base_url` (hosted contenders)."""
        if contender.base_url is None:
            raise WorkbenchError(f"contender {contender.name!r} is embedded: pass the served base_url")
        return cls(contender, contender.base_url, **fields)

    def record(self, request_id: str, prompt: Prompt, extra: dict[str, Any] | None = None, *,
               stream: bool | None = None, t_start_unix: float | None = None) -> Record:
        """A new record of one request of this target: who (run, experiment, contender, model,
        api, reasoning settings), which request and prompt, and `extra` (copied). The one place a
        record gets its identity, whether the request is probed, batched, refused or cut off.
        `stream`: the target's unless given (a batch item is not streamed); `t_start_unix`: now."""
        c = self.contender
        return Record(
            run_id=self.run_id, experiment=self.experiment, contender=c.name, model=c.model,
            request_id=request_id, t_start_unix=time.time() if t_start_unix is None else t_start_unix,
            api_kind=c.api, stream=self.stream if stream is None else stream, prompt_id=prompt.id,
            reasoning=c.reasoning_label(), extra=dict(extra or {}),
        )

    def replace(self, **fields: Any) -> Target:
        """A copy with fields replaced (e.g. `stream=False`, or an experiment's own contender copy)."""
        return dataclasses.replace(self, **fields)
