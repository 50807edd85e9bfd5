"""Build the run's chat model from the ``llm`` config: ``hydra.utils.instantiate`` of its ``_target_``."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any, cast

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from agents.llm.errors import one_line
from agents.llm.protocol import ChatModel

__all__ = ["llm_session", "RUN_ONLY_KEYS"]

# Keys the runner reads and the backend does not take: ``provider`` names the kind of backend in a run's identity.
RUN_ONLY_KEYS = ("provider",)


@contextlib.contextmanager
def llm_session(cfg: DictConfig, max_concurrency: int) -> Iterator[ChatModel]:
    """Yield a ready chat model; what its backend started (the embedded server, a cache) ends with the block.

    ``cfg._target_`` names the backend (``conf/llm/*.yaml``; :mod:`agents.llm.backends`), built with the other
    keys plus ``max_concurrency`` (``_partial_: true``). When what it builds is a context manager, the block runs
    inside it and gets what it yields; otherwise the block gets the object itself.

    Raises:
        ValueError: a config value is wrong (a missing or unknown ``_target_``, a key the backend does not take, a
            value it refuses, an unset API-key variable), in one line.
        LLMUnavailableError: for an OpenAI-compatible endpoint, nothing answers at ``base_url`` or the server
            refuses the key (skip the check with ``+llm.preflight=false``).
    """
    missing = sorted(OmegaConf.missing_keys(cfg))
    if "_target_" in missing or not cfg.get("_target_"):
        raise ValueError("llm._target_ is not set: name the backend class, e.g. llm._target_=my_package.MyBackend")
    if missing:
        raise ValueError(f"llm.{missing[0]} must be set (e.g. llm.{missing[0]}=...)")
    resolved = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))
    settings: dict[str, Any] = {key: value for key, value in resolved.items() if key not in RUN_ONLY_KEYS}
    target = settings["_target_"]
    try:
        built = instantiate(settings, _convert_="all")
        model = built(max_concurrency=max_concurrency) if isinstance(built, functools.partial) else built
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, ValueError):  # the backend's own one-line message
            raise cause from None
        reason = str(cause) if cause is not None else str(error).strip().splitlines()[-1]
        raise ValueError(f"cannot build llm._target_={target}: {one_line(reason)}") from None
    except TypeError as error:  # the partial called with a key its backend does not take
        raise ValueError(f"cannot build llm._target_={target}: {one_line(str(error))}") from None
    with contextlib.ExitStack() as stack:
        if isinstance(model, contextlib.AbstractContextManager):
            model = stack.enter_context(model)
        yield model
