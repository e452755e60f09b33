"""BabyAI-Text's goal grammar, its held-out split and the goal-space contract."""

from __future__ import annotations

import pytest

from autotelic.core import GoalSpace, InvalidGoalError
from autotelic.envs.babyai import (
    COLOURS,
    HELD_OUT,
    BabyAIGoalSpace,
    Category,
    GoalError,
    Thing,
    all_goals,
    canonical_goal,
    parse_goal,
    split_of,
)

SPACE = BabyAIGoalSpace()


def test_the_goal_space_follows_the_core_contract_and_lists_the_four_families():
    assert isinstance(SPACE, GoalSpace)
    assert list(SPACE.categories()) == ["go_to", "pick_up", "open", "put_next"]


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_listed_goal_parses_back_to_itself(split):
    for goal in SPACE.goals(split):
        parsed = SPACE.parse(goal)
        assert parsed.text == goal
        assert parsed.category == parse_goal(goal).category.value


def test_goal_counts_per_split_and_family_are_as_documented():
    train, test = SPACE.goals("train"), SPACE.goals("test")
    assert len(train) + len(test) == 24 + 18 + 6 + 18 * 17
    counts = {c: len(all_goals("test", [c])) for c in Category}
    assert counts == {
        Category.GO_TO: 4,
        Category.PICK_UP: 3,
        Category.OPEN: 1,
        Category.PUT_NEXT: 18 * 17 - 15 * 14,
    }
    assert len(train) == 250 and len(test) == 104


def test_train_and_test_goals_are_disjoint_and_split_by_the_held_out_pairs():
    train, test = SPACE.goals("train"), SPACE.goals("test")
    assert not set(train) & set(test)
    assert {
        Thing("red", "box"),
        Thing("green", "key"),
        Thing("blue", "ball"),
        Thing("yellow", "door"),
    } == HELD_OUT
    for goal in train:
        assert not set(parse_goal(goal).things) & HELD_OUT, goal
        assert split_of(parse_goal(goal)) == "train"
    for goal in test:
        assert set(parse_goal(goal).things) & HELD_OUT, goal


def test_every_colour_and_type_still_appears_in_training_goals():
    words = {w for g in SPACE.goals("train") for w in g.split()}
    assert set(COLOURS) <= words
    assert {"ball", "box", "key", "door"} <= words


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("Go to a red ball", "go to the red ball"),
        ("  go   to THE red   ball ", "go to the red ball"),
        ("pick up a gray key", "pick up the grey key"),
        ("open an purple door", "open the purple door"),
        ("put a red ball next to a blue key", "put the red ball next to the blue key"),
        ("go to the yellow door", "go to the yellow door"),
    ],
)
def test_articles_case_spaces_and_gray_are_canonicalised(text, canonical):
    assert canonical_goal(text) == canonical
    assert SPACE.parse(text).text == canonical


@pytest.mark.parametrize(
    ("text", "kind", "reason"),
    [
        ("", "empty", "empty goal"),
        ("   ", "empty", "empty goal"),
        (
            "go to the plaid ball",
            "unknown_colour",
            "unknown colour 'plaid'; colours are red, green, blue, purple, yellow, grey",
        ),
        (
            "go to the red chair",
            "unknown_object",
            "unknown object 'chair'; objects are ball, box, key, door",
        ),
        ("go to the chair", "unknown_object", "unknown object 'chair'"),
        ("jump over the red ball", "unknown_verb", "unknown verb 'jump'"),
        ("go to the ball", "unknown_colour", "missing colour before 'ball'"),
        ("go to red ball", "malformed", "expected 'the' or 'a' before 'red'"),
        ("go the red ball", "malformed", "expected 'go to' at the start"),
        ("pick the red ball", "malformed", "expected 'pick up' at the start"),
        ("go to", "malformed", "incomplete goal: expected an object after 'go to'"),
        ("go to the", "malformed", "incomplete goal"),
        ("go to the red", "malformed", "expected an object after 'red'"),
        ("go to the red ball quickly", "malformed", "unexpected words after"),
        ("put the red ball on the blue key", "malformed", "expected 'next to' after"),
        ("put the red ball next to", "malformed", "incomplete goal"),
        ("pick up the red door", "wrong_object", "cannot pick up a door"),
        ("open the red box", "wrong_object", "only doors can be opened"),
        ("put the red door next to the blue key", "wrong_object", "not a door"),
        ("put the red ball next to the blue door", "wrong_object", "not a door"),
        ("put the red ball next to a red ball", "wrong_object", "next to itself"),
    ],
)
def test_each_malformed_goal_is_rejected_with_its_reason(text, kind, reason):
    with pytest.raises(GoalError) as err:
        parse_goal(text)
    assert err.value.kind == kind
    assert reason in err.value.reason
    with pytest.raises(InvalidGoalError) as invalid:
        SPACE.parse(text)
    assert invalid.value.reason == err.value.reason


def test_a_goal_that_is_not_a_string_is_rejected():
    with pytest.raises(GoalError, match="a goal is a string"):
        parse_goal(3)  # type: ignore[arg-type]


def test_achieved_is_membership_of_the_canonical_goal():
    achieved = ["go to the red ball", "put the red ball next to the blue key"]
    assert SPACE.achieved("go to the red ball", achieved)
    assert SPACE.achieved("Go to a red ball", achieved)
    assert not SPACE.achieved("go to the blue key", achieved)
    assert not SPACE.achieved("put the blue key next to the red ball", achieved)
    rows = SPACE.achieved_batch(["go to the red ball", "open the red door"], [achieved, achieved])
    assert rows.tolist() == [True, False]
    with pytest.raises(InvalidGoalError):
        SPACE.achieved("go to the plaid ball", achieved)


def test_every_grammatical_goal_is_feasible_and_others_are_rejected():
    assert all(SPACE.feasible(g) for g in SPACE.goals("test"))
    with pytest.raises(InvalidGoalError):
        SPACE.feasible("grow the red ball")
