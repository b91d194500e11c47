"""Live image input for each hosted provider (the spot-check's shapes image, whole answer, tiny
max_tokens); each runs only when its key is set. The server's input count is checked to hold
the image (tens of tokens at least), and printed beside the documented rule's estimate."""

from __future__ import annotations

import os

import pytest

from tests.conftest import run
from tests.providers.test_live import LIVE
from workbench.config import Contender
from workbench.images import image_from_bytes
from workbench.imageset import draw_spotcheck
from workbench.measure.probe import make_client, probe
from workbench.measure.target import Target
from workbench.types import Prompt, Record

pytestmark = [pytest.mark.live, pytest.mark.timeout(60)]


@pytest.mark.parametrize("name", sorted(LIVE))
def test_live_image_input(name: str) -> None:
    spec = LIVE[name]
    env = str(spec["api_key_env"])
    if not os.environ.get(env):
        pytest.skip(f"${env} is not set")
    c = Contender.model_validate({"name": name, **spec})
    image = image_from_bytes(draw_spotcheck(0)[0].png, "shapes.png")

    async def _go() -> Record:
        async with make_client(1, c.timeout_s) as client:
            return await probe(client, Target.hosted(c, stream=False),
                               Prompt(id="live-image", text="How many circles? One word.", images=(image,)))

    rec = run(_go(), timeout=60)
    assert rec.ok, (rec.error_class, rec.error_message)
    assert rec.token_source == "server" and (rec.input_tokens or 0) >= 50, (rec.input_tokens, rec.extra)
    print(f"{name}: server input_tokens {rec.input_tokens}; rule {rec.extra['image_tokens_estimate']} "
          f"({rec.extra['image_tokens_rule']})")
