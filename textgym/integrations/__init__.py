"""TextGym's chat env (:class:`textgym.chat.ChatEnv`) behind the interfaces LLM trainers already speak.

One module per peer, each an optional extra of the ``textgym`` package:

============================  =======================  =====================================================
module                        extra                    what it gives
============================  =======================  =====================================================
``textgym.integrations.gem``        ``textgym[gem]``         ``register()``: ``gem.make("textgym:CartPole-L1")``
``textgym.integrations.verifiers``  ``textgym[verifiers]``   ``load_environment(env=..., level=...)``
``textgym.integrations.openenv``    ``textgym[openenv]``     ``create_app(...)``, served by ``textgym-serve``
``textgym.integrations.trl``        ``textgym[trl]``         dataset, ``rollout_func``, reward, ``environment_factory``
============================  =======================  =====================================================

``textgym[train]`` installs all four. Importing a module whose extra is missing raises
:class:`~textgym.registration.MissingExtraError` in one line naming the extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from textgym.registration import MissingExtraError

__all__ = ["require_extra"]


def require_extra(module: str, extra: str, what: str, then: str = "") -> ModuleType:
    """Import ``module`` or say in one line which ``textgym`` extra installs it.

    Args:
        module: the module the integration needs, e.g. ``"gem"``.
        extra: the ``textgym`` extra that installs it, e.g. ``"gem"``.
        what: the package's name as people know it, e.g. ``"GEM (gem-llm)"``.
        then: a command to run after the extra's install, where the extra cannot hold the package itself.

    Returns:
        The imported module.

    Raises:
        MissingExtraError: the module is not installed.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as missing:
        if missing.name != module and not module.startswith(f"{missing.name}."):
            raise  # the package is there but one of its own imports failed: show that, not a wrong hint
        then = f" && {then}" if then else ""
        raise MissingExtraError(f'textgym.integrations needs {what}, which is not installed: pip install '
                                f'"textgym[{extra}]"{then} (the Python module {module!r} was not found)') from None
