"""How a finished trial's results reach the driver without going through Tune's state.

A trial's payload (prediction log, per-epoch history, scores; tens of KB, growing with epochs)
used to be its final `tune.report`: Tune then kept it as the trial's `last_result` in its
experiment state, rewritten in full at every snapshot (and uploaded to a cloud `--storage`),
about 29 KB per trial even for one-epoch trials. Now the trial hands the payload to the
driver's `Inbox` actor first, then reports a few scalars and the payload's token to Tune
(`final_report`); the driver's results callback takes the payload out of the inbox by that
token and files it (mer.sweep.session).

Why an actor: trials may run on other nodes without a shared file system, so the payload must
travel through Ray. The actor is created by the driver on the driver's node (its life is the
driver's: it goes when the driver goes, as the trials do), holds a payload only between the
trial's hand-over and the driver's pick-up (milliseconds: the trial waits for the hand-over to
land before its final report), and runs no user code. An object reference in the report would
not do: its owner is the trial's worker, which may be gone when the driver reads it.

A search fold trial's small report also carries its validation labels (`val_true`, `val_pred`:
what the searcher pools, mer.sweep.search.fold_trial), since Tune hands the searcher only
results; their size is the fold's validation clips, not its epochs.
"""

from __future__ import annotations

import uuid
from typing import Any

PAYLOAD_KEY = "mer_payload"  # the final report's token of the payload held by the inbox


class Inbox:
    """Payloads handed over by trials, until the driver takes them (a Ray actor class)."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Any]] = {}

    def put(self, token: str, payload: dict[str, Any]) -> int:
        self._items[token] = payload
        return len(self._items)

    def take(self, token: str) -> dict[str, Any] | None:
        return self._items.pop(token, None)


def start_inbox() -> Any:
    """The Inbox actor, on this (the driver's) node, using no CPU of the trials."""
    import ray  # lazy: Ray takes seconds to import
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    actor = ray.remote(num_cpus=0, max_restarts=0)(Inbox)
    return actor.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False)
    ).remote()


def hand_over(inbox: Any, payload: dict[str, Any]) -> str:
    """In a trial: put the payload in the driver's inbox and wait until it is there; returns
    its token for the final report."""
    import ray  # lazy: Ray takes seconds to import

    token = uuid.uuid4().hex
    ray.get(inbox.put.remote(token, payload))
    return token


def collect(inbox: Any, token: str) -> dict[str, Any] | None:
    """In the driver: the payload handed over under `token` (None when the inbox lost it)."""
    import ray  # lazy: Ray takes seconds to import

    return ray.get(inbox.take.remote(token))
