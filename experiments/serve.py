"""textgym-serve: one TextGym env and level as an OpenEnv server (``pip install "textgym[openenv]"``).

    textgym-serve env=cartpole level=1 port=8000
    textgym-serve env=frozenlake level=5 chat.action_format=strict chat.format_penalty=-0.1 max_sessions=128

Serves :func:`textgym.integrations.openenv.create_app` with uvicorn on ``host:port`` (127.0.0.1 unless told
otherwise). OpenEnv clients (``openenv.GenericEnvClient(base_url="http://127.0.0.1:8000")``) open one WebSocket
session each: ``reset(seed=...)``, then ``step({"reply": <model text>})`` until ``done``. ``GET /schema`` names the
action's field, ``GET /sessions`` counts the live sessions. Config errors print one line and exit 2.
"""

from __future__ import annotations

import sys
from typing import Any, cast

import hydra
from omegaconf import DictConfig, OmegaConf

from textgym.registration import MissingExtraError

__all__ = ["chat_kwargs", "main", "serve"]


def chat_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """The :class:`~textgym.chat.ChatEnv` options of a serve config: ``chat.*``, the env's kwargs, the step cap."""
    kwargs: dict[str, Any] = {**cast(dict[str, Any], OmegaConf.to_container(cfg.chat, resolve=True)),
                              **cast(dict[str, Any], OmegaConf.to_container(cfg.env.kwargs, resolve=True))}
    if cfg.max_steps is not None:
        kwargs["max_episode_steps"] = int(cfg.max_steps)
    return kwargs


def serve(cfg: DictConfig) -> None:
    """Build the app from ``cfg`` (errors before binding) and serve it until interrupted."""
    # Imported here, not at the top: both come with the optional openenv extra, whose absence is a one-line error.
    import uvicorn

    from textgym.integrations.openenv import create_app

    app = create_app(cfg.env.name, int(cfg.level), max_sessions=int(cfg.max_sessions),
                     max_reply_chars=int(cfg.max_reply_chars), **chat_kwargs(cfg))
    print(f"textgym-serve: {cfg.env.name} L{cfg.level} on http://{cfg.host}:{cfg.port} (WebSocket /ws, "
          f"up to {cfg.max_sessions} sessions)", flush=True)
    uvicorn.run(app, host=str(cfg.host), port=int(cfg.port), log_level=str(cfg.log_level),
                ws_max_size=int(cfg.max_message_bytes))


@hydra.main(config_path="../conf", config_name="serve", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        serve(cfg)
    except (ValueError, MissingExtraError) as error:  # bad env, level or option; a missing extra
        print(f"textgym-serve: {error}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    """Console entry point (``textgym-serve``)."""
    _hydra_main()


if __name__ == "__main__":
    main()
