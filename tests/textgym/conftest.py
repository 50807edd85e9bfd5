"""Without an optional extra (``textgym[mujoco]``, ``textgym[atari]``) the envs that need it are skipped, by name.

The classic ten need no extra, so the suite still runs them where MuJoCo or ALE is missing; scripts/setup.sh and
CI install both extras, so nothing is skipped there.
"""

from __future__ import annotations

import pytest

from textgym.registration import ENVS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    lacking = {key: entry for entry in ENVS.values() if entry.missing_extra()
               for key in (entry.name, entry.text_id)}
    if not lacking:
        return
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        for value in params.values():
            if isinstance(value, str) and value in lacking:
                extra = lacking[value].extra
                item.add_marker(pytest.mark.skip(reason=f'{value} needs the {extra} extra, which is not installed: '
                                                        f'pip install "textgym[{extra}]"'))
