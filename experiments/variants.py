"""Plain or obfuscated: which text variant of a task a run plays, as a config key, a run-dir suffix and a row field.

The env part (``textgym/obfuscation.py``) takes ``gym.make(id, obfuscate=True, obfuscation_seed=s)``. The
commands spell it as two top-level keys, ``obfuscate: false`` and ``obfuscation_seed: 0`` (``textgym-eval
obfuscate=true``), which :func:`fold_obfuscation` moves into ``env.kwargs`` before anything reads them, so the env
kwargs stay the one place the env's settings live: the run identity (which refuses to resume a plain run dir as an
obfuscated one), the envs the streams make, and the episode rows all follow from them. ``+env.kwargs.obfuscate=true``
means the same. Run dirs of obfuscated runs end in ``-obf<seed>`` (:func:`variant_suffix`); plain ones keep their
names. Episode rows carry ``obfuscation_seed`` (``null`` = plain text), so plain and obfuscated episodes of one
env, level, agent and seed are different episodes to every reader.

PPO reads the raw numeric observation, which obfuscation leaves as it is: it is the same contender on either
variant, so it is trained and evaluated once, on the plain task.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, open_dict

__all__ = ["fold_obfuscation", "obfuscation_seed", "variant_suffix", "variant_name", "PLAIN", "OBFUSCATED"]

PLAIN, OBFUSCATED = "plain", "obfuscated"


def _is_seed(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def fold_obfuscation(cfg: DictConfig) -> None:
    """Move the top-level ``obfuscate``/``obfuscation_seed`` keys of ``cfg`` into ``cfg.env.kwargs`` (in place).

    Nothing changes for ``obfuscate: false`` (a plain run keeps its env kwargs, hence its run identity). Configs
    without the keys are left as they are.

    Raises:
        ValueError: ``obfuscate`` is not a boolean, ``obfuscation_seed`` is not an int >= 0, or ``env.kwargs``
            already names another obfuscation seed.
    """
    obfuscate = cfg.get("obfuscate", False)
    if not isinstance(obfuscate, bool):
        raise ValueError(f"obfuscate must be true or false, got {obfuscate!r}")
    seed = cfg.get("obfuscation_seed", 0)
    if not _is_seed(seed):
        raise ValueError(f"obfuscation_seed must be an int >= 0, got {seed!r}")
    if not obfuscate:
        return
    kwargs = cfg.env.kwargs
    if kwargs.get("obfuscate") and kwargs.get("obfuscation_seed", 0) != seed:
        raise ValueError(f"obfuscation_seed={seed} but env.kwargs.obfuscation_seed={kwargs.get('obfuscation_seed')}:"
                         " set one of them")
    with open_dict(cfg):
        cfg.env.kwargs.obfuscate = True
        cfg.env.kwargs.obfuscation_seed = seed


def obfuscation_seed(env_kwargs: Mapping[str, Any]) -> int | None:
    """The obfuscation seed a run's env kwargs ask for, or ``None`` for the plain text (the row field)."""
    return int(env_kwargs.get("obfuscation_seed", 0)) if env_kwargs.get("obfuscate") else None


def variant_suffix(obfuscate: object, seed: object) -> str:
    """The run-dir suffix of a variant: ``""`` for the plain text, ``"-obf<seed>"`` for an obfuscated one.

    Registered as the ``${variant_suffix:${obfuscate},${obfuscation_seed}}`` resolver of the commands' run dirs.
    """
    return f"-obf{seed}" if obfuscate is True or str(obfuscate).lower() == "true" else ""


def variant_name(seed: int | None) -> str:
    """``"plain"`` or ``"obfuscated"`` (seed ``s`` adds ``" s<seed>"`` where it is not 0), as the report shows it."""
    if seed is None:
        return PLAIN
    return OBFUSCATED if seed == 0 else f"{OBFUSCATED} s{seed}"
