"""The MuJoCo texts name every number as gymnasium documents it, follow the kwargs, and take one number per actuator.

The names are checked against the simulator itself: each component's group must be the joint (in the model's XML
names, as gymnasium's tables give them) whose position or velocity it is, and each action name the joint its
actuator drives. Signs the descriptions state (a pole leaning right, the ground pushing a foot up) are checked by
setting the state and reading where the bodies are.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

mujoco = pytest.importorskip("mujoco", reason='the MuJoCo envs need the mujoco extra: pip install "textgym[mujoco]"')

from textgym import trajectories  # noqa: E402
from textgym.registration import ENVS  # noqa: E402
from textgym.wrapper import make_base_env, make_translator  # noqa: E402

MUJOCO = [name for name, entry in ENVS.items() if entry.extra == "mujoco"]

# For the tasks whose observation is (MuJoCo qpos without the x/y position, qvel): the XML joint behind each
# component group, as gymnasium's observation tables name them.
GROUP_JOINTS = {
    "hopper": {"Torso": "root", "Thigh joint": "thigh_joint", "Leg joint": "leg_joint", "Foot joint": "foot_joint"},
    "walker2d": {"Torso": "root", "Thigh joint": "thigh_joint", "Leg joint": "leg_joint", "Foot joint": "foot_joint",
                 "Left thigh joint": "thigh_left_joint", "Left leg joint": "leg_left_joint",
                 "Left foot joint": "foot_left_joint"},
    "half_cheetah": {"Front tip": "root", "Back thigh": "bthigh", "Back shin": "bshin", "Back foot": "bfoot",
                     "Front thigh": "fthigh", "Front shin": "fshin", "Front foot": "ffoot"},
    "swimmer": {"Front tip": "free_body_rot", "First rotor": "motor1_rot", "Second rotor": "motor2_rot"},
    "ant": {"Torso": "root", **{f"{side} {part} ({kind}_{number})": f"{kind}_{number}"
                                for number, side in ((1, "Front left"), (2, "Front right"), (3, "Back left"),
                                                     (4, "Back right"))
                                for kind, part in (("hip", "hip"), ("ankle", "ankle"))}},
    "inverted_pendulum": {"Cart": "slider", "Pole": "hinge"},
}
# The joint each named actuator drives (gymnasium's action tables; Ant's "angle_k" rotors are the ankle_k joints).
ACTUATOR_JOINTS = {
    "hopper": ["thigh_joint", "leg_joint", "foot_joint"],
    "walker2d": ["thigh_joint", "leg_joint", "foot_joint", "thigh_left_joint", "leg_left_joint", "foot_left_joint"],
    "half_cheetah": ["bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot"],
    "swimmer": ["motor1_rot", "motor2_rot"],
    "reacher": ["joint0", "joint1"],
    "pusher": ["r_shoulder_pan_joint", "r_shoulder_lift_joint", "r_upper_arm_roll_joint", "r_elbow_flex_joint",
               "r_forearm_roll_joint", "r_wrist_flex_joint", "r_wrist_roll_joint"],
    "ant": ["hip_4", "ankle_4", "hip_1", "ankle_1", "hip_2", "ankle_2", "hip_3", "ankle_3"],
}


def _qpos_joints(model) -> list[str]:
    sizes = {int(mujoco.mjtJoint.mjJNT_FREE): 7, int(mujoco.mjtJoint.mjJNT_BALL): 4}
    return [model.joint(j).name for j in range(model.njnt) for _ in range(sizes.get(int(model.jnt_type[j]), 1))]


def _qvel_joints(model) -> list[str]:
    sizes = {int(mujoco.mjtJoint.mjJNT_FREE): 6, int(mujoco.mjtJoint.mjJNT_BALL): 3}
    return [model.joint(j).name for j in range(model.njnt) for _ in range(sizes.get(int(model.jnt_type[j]), 1))]


# Each task as gymnasium makes it, and with the x (and y) position put back where it can be.
LAYOUTS = [(name, False) for name in sorted(GROUP_JOINTS)] + [(name, True) for name in sorted(GROUP_JOINTS)
                                                              if name != "inverted_pendulum"]


@pytest.mark.parametrize("name, positions", LAYOUTS, ids=[f"{n}{'-with_positions' * p}" for n, p in LAYOUTS])
def test_groups_are_the_joints_the_numbers_belong_to(name: str, positions: bool) -> None:
    kwargs = {"include_cfrc_ext_in_observation": False} if name == "ant" else {}
    if name != "inverted_pendulum":
        kwargs["exclude_current_positions_from_observation"] = not positions
    base = make_base_env(name, **kwargs)
    translator = make_translator(name, base)
    model = base.unwrapped.model
    excluded = 0 if positions or name == "inverted_pendulum" else (2 if name in ("swimmer", "ant") else 1)
    joints = _qpos_joints(model)[excluded:] + _qvel_joints(model)
    if name == "swimmer":  # its x/y sliders are the front tip's position and velocity
        joints = ["free_body_rot" if j in ("slider1", "slider2") else j for j in joints]
    assert len(joints) == len(translator.layout)
    for component, joint in zip(translator.layout, joints, strict=True):
        assert GROUP_JOINTS[name][component.group] == (joint if not joint.startswith("root") else "root"), component
    # Every value is where the text says: set a state, read the text back, compare with the simulator's own.
    base.reset(seed=0)
    rng = np.random.default_rng(0)
    task = base.unwrapped
    task.set_state(task.init_qpos + rng.uniform(-0.3, 0.3, model.nq), rng.uniform(-2, 2, model.nv))
    obs = task._get_obs()
    expected = np.concatenate([task.data.qpos[excluded:], task.data.qvel])
    if name in ("hopper", "walker2d"):
        expected[-model.nv:] = np.clip(expected[-model.nv:], -10, 10)  # as gymnasium clips them
    np.testing.assert_allclose(obs, expected)
    np.testing.assert_allclose(translator.read_observation(translator.render_observation(obs)), expected, atol=5e-4)
    assert ("x position" in translator.render_observation(obs)) is positions


@pytest.mark.parametrize("name", sorted(ACTUATOR_JOINTS))
def test_action_names_are_the_joints_the_actuators_drive(name: str) -> None:
    base = make_base_env(name)
    model = base.unwrapped.model
    driven = [model.joint(int(model.actuator_trnid[i, 0])).name for i in range(model.nu)]
    assert driven == ACTUATOR_JOINTS[name]
    translator = make_translator(name, base)
    assert len(translator.action_names) == model.nu and translator.is_vector


def test_reacher_pusher_and_double_pendulum_components() -> None:
    # The components that are not joint states: targets, offsets, positions of bodies, sines and cosines.
    base = make_base_env("reacher")
    base.reset(seed=1)
    task = base.unwrapped
    obs = task._get_obs()
    theta = task.data.qpos[:2]
    np.testing.assert_allclose(obs[:4], [*np.cos(theta), *np.sin(theta)])
    np.testing.assert_allclose(obs[4:6], task.data.qpos[2:])
    np.testing.assert_allclose(obs[8:], (task.get_body_com("fingertip") - task.get_body_com("target"))[:2])
    text = make_translator("reacher", base).render_observation(obs)
    assert f"The fingertip is {np.hypot(*obs[8:]):.3f} m from the target." in text
    pusher = make_base_env("pusher")
    pusher.reset(seed=1)
    obs = pusher.unwrapped._get_obs()
    for part, start in (("fingertip", 14), ("object", 17), ("goal", 20)):
        body = {"fingertip": "tips_arm"}.get(part, part)
        np.testing.assert_allclose(obs[start:start + 3], pusher.unwrapped.get_body_com(body))
    double = make_base_env("inverted_double_pendulum")
    double.reset(seed=1)
    state = double.unwrapped.data
    obs = double.unwrapped._get_obs()
    np.testing.assert_allclose(obs[1:5], [*np.sin(state.qpos[1:]), *np.cos(state.qpos[1:])])
    text = make_translator("inverted_double_pendulum", double).render_observation(obs)
    assert f"the lower pole leans {state.qpos[1]:.3f} rad from upright" in text.replace("-0.000", "0.000")


@pytest.mark.parametrize("name", ["inverted_pendulum", "inverted_double_pendulum"])
def test_a_positive_angle_leans_the_pole_right_and_a_positive_push_moves_right(name: str) -> None:
    base = make_base_env(name)
    base.reset(seed=0)
    task = base.unwrapped
    qpos = np.zeros(task.model.nq)
    qpos[1] = 0.1
    task.set_state(qpos, np.zeros(task.model.nv))
    top = max(range(task.model.ngeom), key=lambda g: task.data.geom_xpos[g][2])  # the highest part of the poles
    assert task.data.geom_xpos[top][0] > 0.01  # leans towards positive x: right
    task.set_state(np.zeros(task.model.nq), np.zeros(task.model.nv))
    base.step(np.array([0.5], dtype=np.float32))
    assert task.data.qpos[0] > 0 and task.data.qvel[0] > 0


def test_ant_contact_forces_are_torque_then_force_and_follow_the_kwargs() -> None:
    base = make_base_env("ant")
    base.reset(seed=0)
    for _ in range(40):  # settle on the ground, motors off
        obs, *_ = base.step(np.zeros(8, dtype=np.float32))
    translator = make_translator("ant", base)
    contacts = obs[27:].reshape(13, 6)
    touching = [row for row in contacts if np.any(row != 0)]
    assert touching and all(row[5] > 0 for row in touching)  # the ground pushes up: force z, the sixth value
    text = translator.render_observation(obs)
    assert "Contact forces on torso: all zero." in text and re.search(r"Contact forces on \S+ \(.*?\): torque x", text)
    np.testing.assert_allclose(translator.read_observation(text), obs, atol=5e-4)
    without = make_translator("ant", make_base_env("ant", include_cfrc_ext_in_observation=False))
    assert len(without.layout) == 27
    env = gym.make("TextGym-Ant-v0", include_cfrc_ext_in_observation=False)
    obs_text, info = env.reset(seed=0)
    assert "Contact forces" not in obs_text and "contact force" not in info["game_description"]
    assert len(obs_text) < 1200 and len(text) < 4096


def test_custom_models_are_refused() -> None:
    with pytest.raises(ValueError, match="another xml_file"):
        make_translator("hopper", make_base_env("hopper", xml_file="walker2d_v5.xml"))


@pytest.mark.parametrize("name", MUJOCO)
def test_descriptions_follow_the_base_kwargs(name: str) -> None:
    base = make_base_env(name, frame_skip=2)
    translator = make_translator(name, base)
    assert f"One step lasts {base.unwrapped.dt:.3f} s" in translator.game_description() + \
        translator.action_description()


def test_reward_weights_reach_the_goal_text() -> None:
    default = gym.make("TextGym-Hopper-v0").reset(seed=0)[1]["goal_description"]
    changed = gym.make("TextGym-Hopper-v0", ctrl_cost_weight=0.05, terminate_when_unhealthy=False,
                       healthy_reward=2.0).reset(seed=0)[1]["goal_description"]
    assert "minus 0.001 times" in default and "minus 0.05 times" in changed and "2.0 for staying healthy" in changed
    assert "does not end when the robot falls" in changed and "does not end" not in default


# ---------------------------------------------------------------------------------------------------- actions
def test_vector_actions_in_every_form() -> None:
    translator = make_translator("walker2d", make_base_env("walker2d"))
    names = translator.action_names
    wanted = [0.3, -0.1, 0.0, 1.0, -1.0, 0.25]
    forms = [
        json.dumps(dict(zip(names, wanted, strict=True))),
        json.dumps({"action": wanted}),
        json.dumps({"thought": "swing the left leg", "action": dict(zip(names, wanted, strict=True))}),
        "I will use " + json.dumps(wanted) + " this step",
        "\n".join(f"{name}: {value}" for name, value in zip(names, wanted, strict=True)),
        ", ".join(f"{name.replace('_', ' ').upper()} = {value}" for name, value in zip(names, wanted, strict=True)),
        "Action: 0.3, -0.1, 0.0, 1.0, -1.0, 0.25",
        translator.action_to_text(np.array(wanted)),
    ]
    for text in forms:
        parsed = translator.parse_action(text)
        assert parsed.valid, text
        np.testing.assert_allclose(parsed.action, wanted, atol=1e-6, err_msg=text)
    clipped = translator.parse_action(json.dumps(dict(zip(names, [5, -5, 0, 0, 0, 0], strict=True))))
    assert clipped.valid and clipped.action.tolist() == [1.0, -1.0, 0, 0, 0, 0]
    for text in ("thigh: 0.3, leg: 0.1", json.dumps({"action": wanted[:5]}), "[1, 2, 3, 4, 5, 6, 7]",
                 json.dumps({"action": [0.1, 0.2, "x", 0, 0, 0]}), "thigh: nan, leg: 0, foot: 0, left_thigh: 0, "
                 "left_leg: 0, left_foot: 0", "[1e309, 0, 0, 0, 0, 0]", "Action: 1, 2, 3", "move the left leg"):
        parsed = translator.parse_action(text)
        assert not parsed.valid and parsed.action.tolist() == [0.0] * 6, text


def test_vector_action_spec_and_description() -> None:
    env = gym.make("TextGym-Reacher-v0")
    _, info = env.reset(seed=0)
    spec = info["action_spec"]
    assert spec == {"type": "vector", "names": ["first_hinge", "second_hinge"], "low": [-1.0, -1.0],
                    "high": [1.0, 1.0], "digits": 2}
    assert info["valid_actions"] == ["first_hinge: -1.00 to 1.00, second_hinge: -1.00 to 1.00"]
    assert '{"first_hinge": 0.00, "second_hinge": 0.00}' in info["action_description"]
    _, _, _, _, info = env.step('{"first_hinge": 0.5, "second_hinge": -2}')
    assert not info["invalid_action"] and info["action"].tolist() == [0.5, -1.0]
    assert info["action_text"] == '{"first_hinge": 0.50, "second_hinge": -1.00}'


# ---------------------------------------------------------------------------------------------------- levels
@pytest.mark.parametrize("name", [n for n in MUJOCO if not ENVS[n].translator_class().has_controller])
def test_levels_without_an_expert_say_how_to_provide_one(name: str) -> None:
    env_id = ENVS[name].text_id
    for level in (1, 2, 3):
        gym.make(env_id, level=level)
    with pytest.raises(ValueError, match=rf"train one with `textgym-ppo env={name}`.*expert_policy_path="):
        gym.make(env_id, level=4)
    with pytest.raises(ValueError, match=r"level 5 needs hand-written teaching"):
        gym.make(env_id, level=5)
    with pytest.raises(ValueError, match=r"is not a file"):
        gym.make(env_id, level=4, expert_policy_path="no/such/model.zip")


def test_ppo_smoke_trains_and_its_policy_file_is_an_expert_for_l4(tmp_path, monkeypatch, fake_llm) -> None:
    """A few thousand PPO steps on Hopper with the zoo's settings; the saved model then serves as L4's expert, passed
    by path to the env, to textgym-trajectories and to textgym-eval."""
    from hydra import compose, initialize_config_module

    from experiments.run_ppo import run

    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path / "cache"))
    with initialize_config_module(config_module="conf", version_base="1.3"):
        cfg = compose(config_name="ppo", overrides=["env=hopper", "ppo.n_timesteps=2048", "eval_seeds=[0]",
                                                    "eval_episodes=1", "logger=none", "progress=false",
                                                    f"results_dir={tmp_path}"])
    run_dir = tmp_path / "ppo"
    run(cfg, run_dir)
    model = run_dir / "model.zip"
    assert model.exists() and (run_dir / "vecnormalize.pkl").exists()
    env = gym.make("TextGym-Hopper-v0", level=4, fewshot_episodes=2, expert_policy_path=str(model))
    obs, info = env.reset(seed=0)
    knowledge = info["knowledge"]
    assert knowledge["fewshot_policy"] == "expert" and len(knowledge["fewshot_examples"]) == 2
    assert all("(expert policy)" in example for example in knowledge["fewshot_examples"])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*different from the unwrapped.*")
        check_env(env, skip_render_check=True)
    # The trajectories are keyed by the file's content: another model is never shown from the cache.
    translator = env.get_wrapper_attr("translator")
    assert translator.options["expert_policy_sha256"] and translator.options["expert_policy_path"] == str(model)
    trajectories.main(["--env", "hopper", "--policy", "expert", "--episodes", "1",
                               "--expert-policy-path", str(model)])
    # The runner passes it through env.kwargs: a language agent's L4 prompt holds the policy's trajectories.
    fake_llm.responder = lambda request: json.dumps({"action": {"thigh": 0.1, "leg": 0.0, "foot": -0.1}})
    result = subprocess.run([sys.executable, "-m", "experiments.run_agent", "env=hopper", "level=4", "agent=naive",
                             "max_steps=2", f"+env.kwargs.expert_policy_path={model}",
                             "+env.kwargs.fewshot_episodes=2", "llm=server", f"llm.base_url={fake_llm.base_url}",
                             "llm.model=scripted", "llm.cache=off", "logger=none", "progress=false",
                             f"results_dir={tmp_path / 'runs'}"],
                            timeout=300, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    prompt = fake_llm.prompts()[0]
    assert "Example episode 1 (expert policy)" in prompt and "Example episode 2 (expert policy)" in prompt
    assert "Each action is a list [thigh, leg, foot]" in prompt  # the compact steps and their legend


# ---------------------------------------------------------------------------------------------------- agents
WALKER = make_translator("walker2d", make_base_env("walker2d"))
VECTOR_REPLIES = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from([*WALKER.action_names, "left thigh", ": ", " = ", ", ", "\n", "0.5", "-2", "nan",
                              "1e309", "[", "]", "{", "}", '"action": ', '"thigh": ', "Action: ", "x"]),
             max_size=30).map("".join),
    st.lists(st.floats(width=64), min_size=6, max_size=6).map(lambda values: json.dumps(
        {"action": dict(zip(WALKER.action_names, values, strict=True))})),
)


@settings(max_examples=200, deadline=None)
@given(VECTOR_REPLIES)
def test_agents_read_a_vector_reply_exactly_as_the_env_does(text: str) -> None:
    from agents.parsing import parse_reply

    parsed = parse_reply(text, WALKER.action_spec())
    env_reading = WALKER.parse_action(text)
    assert parsed.valid == env_reading.valid, text
    if parsed.valid:  # the canonical text the agent sends plays what the env would have played
        np.testing.assert_allclose(WALKER.parse_action(parsed.action).action, env_reading.action, atol=0.005)


def test_the_json_schema_admits_exactly_one_bounded_number_per_actuator() -> None:
    from agents.parsing import action_json_schema, parse_reply

    spec = WALKER.action_spec()
    schema = action_json_schema(spec, thought_chars=100)["properties"]["action"]
    assert schema["required"] == list(WALKER.action_names) and schema["additionalProperties"] is False
    assert all(schema["properties"][name] == {"type": "number", "minimum": -1.0, "maximum": 1.0}
               for name in WALKER.action_names)
    reply = json.dumps({"thought": "swing", "action": dict(zip(WALKER.action_names, [0.1] * 6, strict=True))})
    parsed = parse_reply(reply, spec)
    assert parsed.action == "{" + ", ".join(f'"{name}": 0.10' for name in WALKER.action_names) + "}"
    assert WALKER.parse_action(parsed.action).action.tolist() == pytest.approx([0.1] * 6)


def test_swimmer_expert_has_no_teaching_and_ignores_the_positions_it_was_not_found_with() -> None:
    gym.make("TextGym-Swimmer-v0", level=4, fewshot_episodes=1)
    with pytest.raises(ValueError, match="none is written for swimmer"):
        gym.make("TextGym-Swimmer-v0", level=5)
    default, with_positions = make_base_env("swimmer"), make_base_env("swimmer",
                                                                      exclude_current_positions_from_observation=False)
    obs, _ = default.reset(seed=3)
    full, _ = with_positions.reset(seed=3)
    np.testing.assert_allclose(full[2:], obs)
    act = make_translator("swimmer", default).expert_policy(default)
    act_full = make_translator("swimmer", with_positions).expert_policy(with_positions)
    np.testing.assert_allclose(act(obs), act_full(full))
