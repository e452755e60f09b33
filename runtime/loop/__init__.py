"""The loop: goals in, episodes collected, stored and learned from, a new policy out.

``agent`` wires one run's parts and restores them from its directory; ``collector``
steps N environments with one batched policy call and commits finished episodes;
``schedules`` say when learning is due (built of ``coordination``'s throttle and safe
points), ``profiles`` what ``run.profile`` changes for the hardware;
``learner_loop`` turns replayed batches or rollouts into updates; ``control`` is the
plain interface (inject a goal, read the status) that transports adapt; ``backends``
registers the local backend. Nothing here knows a transport.
"""
