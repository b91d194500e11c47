"""Exact token counts for the embedded models, because llama.cpp's server streams no `usage`.

The model's own vocabulary is loaded in-process (`Llama(vocab_only=True)`: the tokenizer
without the weights, ~0.1 s) and the prompt is rendered the way llama-cpp-python's server
renders it: the GGUF chat template through the same `Jinja2ChatFormatter`, or the contender's
`prompt_template` for completions, BOS added by the vocabulary's own rule. The integration
tests check these counts against the server's non-streamed `usage` on the shipped prompts.
"""

from __future__ import annotations

import contextlib
import functools
import io
import threading
from typing import TYPE_CHECKING, Any

from workbench.embedded import assemble_model

if TYPE_CHECKING:
    from workbench.config import Contender
    from workbench.types import Prompt

__all__ = ["LocalTokenCounter", "token_counter_for"]


class LocalTokenCounter:
    """`workbench.types.TokenCounter` for one embedded model."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self._lock = threading.Lock()
        self._llm: Any = None
        self._formatter: Any = None

    def _load(self) -> Any:
        with self._lock:
            if self._llm is None:
                from llama_cpp import Llama, llama_chat_format

                path = assemble_model(self.model_name)
                # llama.cpp prints model metadata on stderr even with verbose=False.
                with contextlib.redirect_stderr(io.StringIO()):
                    llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
                template = llm.metadata.get("tokenizer.chat_template")
                if template:
                    eos = llm.token_eos()
                    bos = llm.token_bos()
                    self._formatter = llama_chat_format.Jinja2ChatFormatter(
                        template=template,
                        eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
                        bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
                        stop_token_ids=[eos],
                    )
                self._llm = llm
            return self._llm

    def count_output(self, text: str) -> int | None:
        llm = self._load()
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def count_input(self, contender: Contender, prompt: Prompt) -> int | None:
        llm = self._load()
        if contender.prompt_template:
            rendered = contender.prompt_template.replace("{prompt}", prompt.text)
            return len(llm.tokenize(rendered.encode("utf-8"), add_bos=True, special=True))
        if self._formatter is None:
            return None
        messages = []
        system = prompt.system or contender.system_prompt
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": prompt.text})
        result = self._formatter(messages=messages)
        return len(llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special,
                                special=True))


@functools.cache
def _counter(model_name: str) -> LocalTokenCounter:
    return LocalTokenCounter(model_name)


def token_counter_for(contender: Contender) -> LocalTokenCounter | None:
    """The exact counter for an embedded contender; None for hosted ones (they report usage)."""
    return _counter(contender.local) if contender.local else None
