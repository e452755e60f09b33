"""Episode records: the builder, validation, and the versioned, checksummed encoding."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import msgpack
import pytest
from pydantic import ValidationError

from autotelic.storage import (
    SCHEMA_VERSION,
    CorruptRecordError,
    EpisodeBuilder,
    SchemaVersionError,
)
from autotelic.storage.records import decode_episode, decode_view, encode_episode
from tests.storage_fixtures import hand_episode, playground_episode


def _builder(**overrides: Any) -> EpisodeBuilder:
    args: dict[str, Any] = {
        "goal": "Grasp cow",
        "goal_category": "grasp",
        "goal_source": "configured",
        "env_id": "test/hand-v0",
        "scene_seed": 3,
        "observation": "start",
        "admissible_actions": ["a", "b"],
        "started_at": 10.0,
    }
    args.update(overrides)
    return EpisodeBuilder(**args)


def test_builder_assembles_steps_with_the_state_each_led_to():
    b = _builder()
    b.add_step(1, 0.0, False, False, ["Grasp sheep"], 4, "middle", ["c"])
    b.add_step(0, 1.0, True, False, ["Grasp cow"], 5, "end", ["d", "e"])
    assert b.done
    ep = b.build(ended_at=11.0)
    assert [s.observation for s in ep.steps] == ["start", "middle"]
    assert [s.admissible_actions for s in ep.steps] == [["a", "b"], ["c"]]
    assert [s.action_text for s in ep.steps] == ["b", "c"]
    assert [s.policy_version for s in ep.steps] == [4, 5]
    assert ep.final_observation == "end" and ep.final_admissible_actions == ["d", "e"]
    assert ep.success and ep.total_reward == 1.0 and ep.length == 2
    assert ep.achieved_goals == ["Grasp sheep", "Grasp cow"]
    assert ep.id is None and ep.started_at == 10.0 and ep.ended_at == 11.0


def test_builder_accepts_numpy_scalars_from_a_vectorised_collector():
    np = pytest.importorskip("numpy")
    b = _builder()
    b.add_step(
        np.int64(1), np.float32(0.0), np.bool_(False), np.bool_(True), [], np.int64(2), "s", ["x"]
    )
    ep = b.build()
    step = ep.steps[0]
    assert type(step.action) is int and type(step.reward) is float
    assert step.truncated is True and step.terminated is False and step.policy_version == 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda b: b.add_step(2, 0.0, False, False, [], 0, "s", ["x"]), "outside the 2 admissible"),
        (
            lambda b: b.add_step(-1, 0.0, False, False, [], 0, "s", ["x"]),
            "outside the 2 admissible",
        ),
        (lambda b: b.add_step(0, float("nan"), False, False, [], 0, "s", ["x"]), "not finite"),
        (lambda b: b.build(), "has no steps"),
    ],
)
def test_builder_rejects_bad_steps_where_they_happen(call, message):
    with pytest.raises(ValueError, match=message):
        call(_builder())


def test_builder_refuses_steps_after_the_end_and_bad_sources():
    b = _builder()
    b.add_step(0, 0.0, False, True, [], 0, "s", ["x"])
    with pytest.raises(ValueError, match="already ended after 1 steps"):
        b.add_step(0, 0.0, False, False, [], 0, "s", ["x"])
    with pytest.raises(ValueError, match="goal_source 'human' must be one of"):
        _builder(goal_source="human")
    with pytest.raises(ValueError, match="ended_at"):
        b.build(ended_at=1.0)


def test_episode_model_rejects_a_terminal_step_before_the_last():
    ep = hand_episode([[], []])
    data = ep.model_dump()
    data["steps"][0]["terminated"] = True
    with pytest.raises(ValidationError, match="step 0 of 2 ends the episode"):
        type(ep).model_validate(data)


def test_round_trip_keeps_every_field_including_unicode():
    ep = hand_episode(
        [["Grasp 牛"], [], ["Grow 🌱", "Grasp é"]],
        goal="Grasp ünïcødé",
        tag="Ω≈ç√ 漢字 \U0001f600 ",
    )
    ep = ep.model_copy(update={"extra": {"note": "ß", "n": [1, 2.5, None, True]}})
    back = decode_episode(7, encode_episode(ep))
    assert back == ep.model_copy(update={"id": 7})


def test_round_trip_of_real_playground_episodes():
    for seed in range(25):
        ep = playground_episode(seed, source="injected")
        assert decode_episode(seed, encode_episode(ep)) == ep.model_copy(update={"id": seed})


def test_view_decodes_the_same_states_and_columns_as_the_model():
    ep = playground_episode(3)
    view = decode_view(1, encode_episode(ep))
    assert view.length == ep.length and view.goal == ep.goal
    assert view.actions == [s.action for s in ep.steps]
    assert view.achieved == [s.achieved_goals for s in ep.steps]
    for t, step in enumerate(ep.steps):
        assert view.state(t) == (step.observation, step.admissible_actions)
    assert view.state(ep.length) == (ep.final_observation, ep.final_admissible_actions)


def _resealed(value: bytes, mutate) -> bytes:
    """Decode the header, let ``mutate`` change it, re-encode with a valid checksum."""
    body = value[4:]
    (size,) = struct.unpack(">I", body[:4])
    header = msgpack.unpackb(body[4 : 4 + size])
    mutate(header)
    new_header = msgpack.packb(header)
    new_body = struct.pack(">I", len(new_header)) + new_header + body[4 + size :]
    return struct.pack(">I", zlib.crc32(new_body)) + new_body


def test_a_newer_schema_version_is_a_clear_error_naming_both_versions():
    value = _resealed(encode_episode(hand_episode([[]])), lambda h: h.update(v=SCHEMA_VERSION + 1))
    for decode in (decode_episode, decode_view):
        with pytest.raises(SchemaVersionError) as info:
            decode(42, value)
        text = str(info.value)
        assert "episode 42" in text
        assert f"schema version {SCHEMA_VERSION + 1}" in text
        assert f"up to {SCHEMA_VERSION}" in text


def test_corruption_is_detected_and_names_the_episode():
    value = encode_episode(hand_episode([[], ["Grasp x"]]))
    flipped = bytearray(value)
    flipped[len(value) // 2] ^= 0x01
    cases = {
        "checksum mismatch": bytes(flipped),
        "truncated": value[:5],
    }
    for reason, data in cases.items():
        with pytest.raises(CorruptRecordError, match=rf"episode 9 is corrupt: .*{reason}"):
            decode_episode(9, data)
    cut = value[:-3]
    with pytest.raises(CorruptRecordError, match="episode 9"):
        decode_episode(9, cut)


def test_structurally_wrong_records_with_valid_checksums_are_corrupt_not_crashes():
    value = encode_episode(hand_episode([[], []]))
    broken = {
        "missing column": lambda h: h.pop("rew"),
        "short column": lambda h: h["pv"].pop(),
        "bad offsets": lambda h: h["st"].append(5),
        "no version": lambda h: h.pop("v"),
        "bad types": lambda h: h.update(act=["x", "y"]),
    }
    for name, mutate in broken.items():
        with pytest.raises(CorruptRecordError, match="episode 5 is corrupt"):
            decode_episode(5, _resealed(value, mutate))
        assert name
