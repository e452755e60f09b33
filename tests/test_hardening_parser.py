"""The goal-request parser against hostile JSON: deep nesting and repeated keys.

Every payload gets a verdict with a reason (:class:`RequestError`), never another
exception: the service logs whatever else escapes the parser as an internal error with
a traceback, once per message.
"""

from __future__ import annotations

import json
import random

import pytest

from autotelic.runtime.transport.messages import (
    MAX_NESTING,
    MAX_PAYLOAD_BYTES,
    InjectRequest,
    RequestError,
    parse_inject_request,
)


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 1000, 5000, MAX_PAYLOAD_BYTES // 2 - 20])
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deep_nesting_is_rejected_with_its_depth_and_no_recursion_error(
    depth: int, opener: str
) -> None:
    closer = "]" if opener == "[" else "}"
    payload = ('{"goal": ' + opener * depth + "1" + closer * depth + "}").encode()
    if len(payload) > MAX_PAYLOAD_BYTES:
        payload = ('{"goal":' + opener * depth).encode()[:MAX_PAYLOAD_BYTES]
    expected = depth + 1 if len(payload) < MAX_PAYLOAD_BYTES else payload.count(opener[0].encode())
    with pytest.raises(RequestError, match=f"nests {expected} levels deep; at most {MAX_NESTING}"):
        parse_inject_request(payload)


def test_unclosed_deep_nesting_within_the_size_limit_is_rejected_for_its_depth() -> None:
    payload = b"[" * MAX_PAYLOAD_BYTES
    with pytest.raises(RequestError, match=f"nests {MAX_PAYLOAD_BYTES} levels deep"):
        parse_inject_request(payload)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    goal = "[" * 100 + '{\\"' + "}" * 3
    request = parse_inject_request(json.dumps({"goal": goal, "request_id": "[[[["}).encode())
    assert request.goal == json.loads(json.dumps(goal)) and request.request_id == "[[[["


def test_nesting_up_to_the_limit_reaches_validation() -> None:
    value = "[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1)
    with pytest.raises(RequestError, match="invalid request: goal"):
        parse_inject_request(('{"goal": ' + value + "}").encode())


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        ('{"goal": "Grow carrot", "goal": "Grasp cow"}', "goal"),
        ('{"goal": "Grow carrot", "episodes": 1, "episodes": 500}', "episodes"),
        ('{"goal": "Grow carrot", "extra": {"a": 1, "a": 2}}', "a"),
    ],
)
def test_a_repeated_key_is_rejected_and_named(payload: str, key: str) -> None:
    with pytest.raises(RequestError, match=f"repeats the key '{key}'"):
        parse_inject_request(payload.encode())


def test_a_valid_request_still_parses() -> None:
    request = parse_inject_request(b'{"goal": "Grow carrot", "episodes": 3, "priority": 2}')
    assert request == InjectRequest(goal="Grow carrot", episodes=3, priority=2)


def _mutations(rng: random.Random) -> bytes:
    base = rng.choice(
        [
            b'{"goal": "Grow carrot", "episodes": 2}',
            b'{"goal": "Grasp cow", "goal": "Grasp cow"}',
            b'{"goal": ' + b"[" * rng.randrange(1, 9000) + b"]" * rng.randrange(0, 50) + b"}",
            b'{"a":' * rng.randrange(1, 3000) + b"1" + b"}" * rng.randrange(0, 3000),
            json.dumps({"goal": "x", "extra": [[[[[[[[[[{}]]]]]]]]]]}).encode(),
        ]
    )
    data = bytearray(base)
    for _ in range(rng.randrange(0, 4)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data[: MAX_PAYLOAD_BYTES + rng.randrange(2)])


def test_ten_thousand_hostile_payloads_each_get_a_reason() -> None:
    rng = random.Random(24)
    verdicts = {"accepted": 0, "rejected": 0}
    for _ in range(10_000):
        payload = _mutations(rng)
        try:
            parse_inject_request(payload)
        except RequestError as err:
            assert len(err.reason) > 10 and "\n" not in err.reason
            verdicts["rejected"] += 1
        else:
            verdicts["accepted"] += 1
    assert verdicts["rejected"] > 5000 and verdicts["accepted"] > 100
