"""The expert: minigrid's BabyAI bot, advising on the env's live level.

The bot keeps a plan and a map of what it has seen, and it must hear of every
action actually taken to keep them right (it then also advises a learner that
strays, as in DAgger). :class:`BotAdvisor` feeds it the action of each step
since it last spoke. When it cannot (a step went unheard because the oracle
was not asked at every step, or a box the bot had seen was opened), it starts a
fresh bot from the current state, which plans without the map of earlier views;
if the agent holds something then, the fresh bot first puts it down (or, for a
put-next-to goal holding the object to move, carries on from there), since the
bot's plans start empty-handed.
"""

from __future__ import annotations

from typing import Any, Protocol

from minigrid.envs.babyai.core.verifier import PutNextInstr
from minigrid.utils.baby_ai_bot import (
    BabyAIBot,
    DisappearedBoxError,
    DropSubgoal,
    GoNextToSubgoal,
)

NUM_ACTIONS = 6
"""The bot's answers that are env actions: all but minigrid's ``done``."""


class OracleError(RuntimeError):
    """The bot cannot advise from this state (e.g. an object the goal names is gone)."""


class BotAdvisor:
    """A BabyAI bot bound to one episode of a level."""

    def __init__(self, level: Any) -> None:
        self.level = level
        self._bot: Any = None
        self._heard = -1
        self._advice = 0

    def advise(self, steps: int, last_action: int | None) -> int:
        """The bot's action after ``steps`` steps, the last of which was ``last_action``."""
        if steps == self._heard:
            return self._advice
        self._check_goal_objects()
        try:
            if self._bot is not None and steps == self._heard + 1:
                try:
                    action = self._bot.replan(last_action)
                except DisappearedBoxError:
                    action = self._fresh_bot()
            else:
                action = self._fresh_bot()
        except (AssertionError, DisappearedBoxError) as err:
            raise OracleError(f"the BabyAI bot cannot plan from here ({err!r})") from err
        if action is None or not 0 <= int(action) < NUM_ACTIONS:
            raise OracleError(f"the BabyAI bot proposes no env action ({action!r})")
        self._heard, self._advice = steps, int(action)
        return self._advice

    def _check_goal_objects(self) -> None:
        """Toggling a box makes it vanish; then a goal naming it cannot be achieved."""
        present = {(o.color, o.type) for o in [*self.level.grid.grid, self.level.carrying] if o}
        for thing in self.level.goal.things if self.level.goal else ():
            if (thing.colour, thing.kind) not in present:
                raise OracleError(f"{thing.text} is gone (an opened box vanishes): no plan")

    def _fresh_bot(self) -> Any:
        """A new bot's first action from the current state."""
        self._bot = BabyAIBot(self.level)  # type: ignore[no-untyped-call]
        if self.level.carrying is not None:
            self._start_holding(self._bot)
        return self._bot.replan(None)

    def _start_holding(self, bot: Any) -> None:
        """Adapt a fresh plan, which assumes empty hands, to the object held now."""
        instr = self.level.instrs
        if isinstance(instr, PutNextInstr) and any(
            obj is self.level.carrying for obj in instr.desc_move.obj_set
        ):
            del bot.stack[-2:]  # already holding the object to move: skip fetching it
            return
        bot._process_obs()  # the drop place is chosen among cells seen
        drop_at = bot._find_drop_pos()
        if drop_at is None:
            raise OracleError("the BabyAI bot finds nowhere to put down what the agent holds")
        bot.stack.append(DropSubgoal(bot))
        bot.stack.append(GoNextToSubgoal(bot, tuple(drop_at)))


class Advised(Protocol):
    """What the oracle reads of an env: its advisor, its step count and its last action
    (the BabyAI-Text env; a protocol so this module need not import the env's)."""

    @property
    def steps(self) -> int: ...

    @property
    def last_action(self) -> int | None: ...

    def advisor(self) -> BotAdvisor: ...


def oracle_action(env: Advised) -> int:
    """The index, among the env's six actions, of the bot's next action."""
    return env.advisor().advise(env.steps, env.last_action)
