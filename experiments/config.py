"""Config helpers shared by the runners: resolvers, validation, secret-free dumps, wandb."""

from __future__ import annotations

import importlib
import logging
import os
import re
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from experiments.records.keys import Shard
from experiments.running.episodes import EPISODES_PER_SEED
from experiments.variants import variant_suffix
from textgym.levels import LEVELS

__all__ = ["CONF_DIR", "group_options", "quiet_libraries", "register_resolvers", "agent_name", "agent_class",
           "validate_eval", "check_workers", "loggable_config", "start_wandb", "save_run_config", "ConfigComposed"]

logger = logging.getLogger(__name__)
SECRET_KEY = re.compile(r"(api_?key|token|secret|password)$", re.IGNORECASE)
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"  # the config groups every textgym-* command composes


def group_options(group: str) -> list[str]:
    """The options of a config group (``env`` -> ``["acrobot", "ant", ...]``), as ``group=<option>`` takes them."""
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))


def quiet_libraries() -> None:
    """HTTP clients log every request at INFO; the run log keeps only their warnings."""
    for name in ("httpx", "httpx2", "httpcore", "openai"):
        logging.getLogger(name).setLevel(logging.WARNING)


def agent_class(target: str) -> type:
    """Import ``module.Class``; a clear error when it does not exist."""
    module_name, _, class_name = str(target).rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(f"cannot import agent class {target!r} ({error}); use agent=<name> with a name from "
                         f"conf/agent/ or agent._target_=your.module.YourAgent") from error


def agent_name(target: str, name: str | None = None) -> str:
    """The agent's short name, used in run dirs and results.

    The config's ``agent.name`` when it sets one (presets that vary one class, e.g. ``exe_no_insight``), else its
    class's ``name``.
    """
    if name is not None:
        return str(name)
    cls = agent_class(target)
    name = getattr(cls, "name", None)
    return name if isinstance(name, str) and name not in ("agent", "language") else cls.__name__


def register_resolvers() -> None:
    """``${agent_name:...}`` (run dir names) and ``${group_options:env}`` (the commands' --help texts)."""
    if not OmegaConf.has_resolver("agent_name"):
        OmegaConf.register_new_resolver("agent_name", agent_name)
    if not OmegaConf.has_resolver("variant_suffix"):  # -obf<seed> for obfuscated runs (experiments/variants.py)
        OmegaConf.register_new_resolver("variant_suffix", variant_suffix)
    if not OmegaConf.has_resolver("group_options"):
        OmegaConf.register_new_resolver("group_options", lambda group: ", ".join(group_options(group)))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def check_workers(workers: object) -> None:
    """``workers`` must be an int >= 1 or ``"auto"``.

    Raises:
        ValueError: naming what was given.
    """
    _require(workers == "auto" or (isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1),
             f"workers must be an int >= 1 or auto, got {workers!r}")


def validate_eval(cfg: DictConfig) -> None:
    """Check the values Hydra cannot type-check, naming what is allowed."""
    _require(cfg.level in LEVELS, f"level={cfg.level!r} is not a level: expected one of {list(LEVELS)}")
    _require(OmegaConf.is_list(cfg.seeds), f"seeds must be a list, e.g. seeds=[{cfg.seeds}] (one stream) or "
             f"seeds=[0,1,2] (three streams), got seeds={cfg.seeds!r}")
    _require(bool(cfg.seeds) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in cfg.seeds),
             f"seeds must be a non-empty list of ints >= 0, got {list(cfg.seeds)!r}")
    _require(isinstance(cfg.episodes, int) and 1 <= cfg.episodes <= EPISODES_PER_SEED,
             f"episodes must be from 1 to {EPISODES_PER_SEED}, got {cfg.episodes!r}")
    _require(isinstance(cfg.concurrency, int) and cfg.concurrency >= 1,
             f"concurrency must be >= 1, got {cfg.concurrency!r}")
    _require(cfg.max_steps is None or (isinstance(cfg.max_steps, int) and cfg.max_steps >= 1),
             f"max_steps must be null or >= 1, got {cfg.max_steps!r}")
    check_workers(cfg.get("workers", 1))
    Shard.parse(cfg.get("shard"))  # i/n with 1 <= i <= n, or null


class ConfigComposed(Callback):
    """Hydra callback (``hydra.callbacks`` in the commands' configs): the config composed.

    So a later exit 1 is not a config error (experiments/cli.py). It lives here, not in a runner:
    ``python -m experiments.run_agent`` runs that module as ``__main__``, and the flag must be read from the module
    Hydra imported.
    """

    composed = False

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A single run composed."""
        ConfigComposed.composed = True

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A sweep composed."""
        ConfigComposed.composed = True


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("***" if SECRET_KEY.search(str(k)) and v else _scrub(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def loggable_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain data with any secret-looking value masked (keys are only named by env var)."""
    return _scrub(OmegaConf.to_container(cfg, resolve=True))


def start_wandb(cfg: DictConfig, run_dir: Path, name: str, job_type: str) -> Any | None:
    """A wandb run in ``run_dir`` (offline by default), or ``None`` when disabled."""
    if cfg.logger.mode == "disabled":
        return None
    os.environ.setdefault("WANDB_SILENT", "true")  # its banners and tips would bury the run's own log
    import wandb  # imported only when used: it is slow to import

    return wandb.init(project=cfg.logger.project, entity=cfg.logger.entity, mode=cfg.logger.mode, dir=str(run_dir),
                      name=name, job_type=job_type, tags=list(cfg.logger.tags), config=loggable_config(cfg),
                      reinit="finish_previous", settings=wandb.Settings(silent=True))


def save_run_config(cfg: DictConfig, run_dir: Path) -> None:
    """Write ``run_dir/.hydra/config.yaml`` as Hydra does for a command's run, if it is not there.

    Runs started from code (``textgym-compare``'s evals, the benchmarks) have no Hydra run of their own; their
    dirs get the config too, resolved, secrets masked.
    """
    path = Path(run_dir) / ".hydra" / "config.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(OmegaConf.to_yaml(loggable_config(cfg)))
