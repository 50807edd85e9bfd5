"""TextGym: classic Gym tasks as text, at five domain-knowledge levels.

>>> import gymnasium as gym
>>> import textgym
>>> env = gym.make("TextGym-CartPole-v0", level=1)
>>> obs, info = env.reset(seed=0)
>>> isinstance(obs, str) and "raw_obs" in info
True
"""

from textgym.levels import LEVELS, LevelSpec, level_spec
from textgym.registration import ENVS, env_entry, register_envs, text_env_id
from textgym.translator import ParsedAction, Translator
from textgym.wrapper import TextEnv, make_text_env

register_envs()

__all__ = [
    "ENVS",
    "LEVELS",
    "LevelSpec",
    "ParsedAction",
    "TextEnv",
    "Translator",
    "env_entry",
    "level_spec",
    "make_text_env",
    "register_envs",
    "text_env_id",
]
__version__ = "0.1.0"
