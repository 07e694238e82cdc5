"""Which deployment of a model group serves a request: `router_settings.routing_strategy`.

- `prefix-affinity` (default): the requests of one conversation go to the same replica, where
  SGLang's RadixAttention still holds the conversation's prefix. Consistent hashing with bounded
  loads (Mirrokni, Thorup, Zadimoghaddam, 2018): the conversation key picks a point on a ring of
  virtual nodes (64 per unit of `weight`), and the first replica clockwise whose load is under
  `LOAD_FACTOR` times its weighted share of the group's load takes it. New conversations spread
  by weight; a replica that is busy (requests in flight from this gateway, plus its queue as
  SGLang reports it) passes them on to its ring successor, always the same one for a key, so a
  spilled conversation also keeps one home. Gateway replicas that share a config build the same
  ring, so they agree on a conversation's replica without talking to each other. Adding or
  removing a replica moves only the conversations whose ring segment it owns.
- `simple-shuffle`: weighted random, LiteLLM's default; no affinity.
- `least-busy`: fewest requests in flight plus queued, per unit of weight (LiteLLM's least-busy
  counts in-flight requests); ties broken at random.

Every strategy orders all of a group's deployments (the rest follow the pick, as in-group
fallbacks); deployments that are out (proxy/deployment_health.py) are returned separately, to be
tried only after every available one. Ordering costs a hash and a few comparisons: no network
call, no lock.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections.abc import Sequence
from typing import Any, Generic, Literal, Protocol, TypeVar

import orjson

Strategy = Literal["prefix-affinity", "simple-shuffle", "least-busy"]

#: a replica takes a request while its load stays under this multiple of its weighted share
LOAD_FACTOR = 1.25
#: ring points per unit of weight
VNODES = 64


class Member(Protocol):
    """A deployment as the balancer sees it (proxy.deployment_health.DeploymentState)."""

    name: str
    weight: float

    def available(self, now: float) -> bool: ...
    def load(self) -> float: ...


M = TypeVar("M", bound=Member)


def _h64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def conversation_key(kind: str, body: dict[str, Any], conversation_id: str | None = None) -> str:
    """A stable, opaque key for the conversation a request belongs to.

    The client's `x-conversation-id` when it sent one; otherwise the conversation's opening (first
    system or developer message and first user message; a completion's prompt), which every later
    turn repeats. Called on the masked body, so no personal value is hashed, and the key names
    nothing: it is also sent to sglang-router as its routing key."""
    if conversation_id:
        seed = b"id\0" + conversation_id.encode()
    elif kind == "chat":
        messages = body.get("messages") or []
        system = next((m.get("content") for m in messages if m.get("role") in ("system", "developer")), None)
        user = next((m.get("content") for m in messages if m.get("role") == "user"), None)
        seed = b"chat\0" + orjson.dumps([system, user])
    else:
        seed = b"text\0" + orjson.dumps(body.get("prompt"))[:4096]
    return hashlib.blake2b(seed, digest_size=12).hexdigest()


def _ring_names(members: Sequence[Member]) -> list[str]:
    """Names of the ring's replicas: a deployment's own, numbered when two share one (e.g. two
    deployments without model_info.id), so the ring depends on the config, not on memory."""
    seen: dict[str, int] = {}
    out = []
    for m in members:
        k = seen.get(m.name, 0)
        seen[m.name] = k + 1
        out.append(m.name if k == 0 else f"{m.name}#{k}")
    return out


class Balancer(Generic[M]):
    """Orders the deployments of one model group for one request."""

    def __init__(self, members: Sequence[M], strategy: Strategy = "prefix-affinity", rng: random.Random | None = None):
        self.members = list(members)
        self.strategy = strategy
        self.rng = rng or random.Random()
        self._points: list[int] = []
        self._successors: list[tuple[int, ...]] = []
        if strategy == "prefix-affinity" and len(self.members) > 1:
            self._build_ring()

    def _build_ring(self) -> None:
        points: list[tuple[int, int]] = []
        for i, name in enumerate(_ring_names(self.members)):
            for v in range(max(1, round(VNODES * self.members[i].weight))):
                points.append((_h64(f"{name}\0{v}".encode()), i))
        points.sort()
        self._points = [p for p, _ in points]
        owners = [i for _, i in points]
        # For each point: the distinct members met walking clockwise from it (the key's preference order).
        n, count = len(owners), len(self.members)
        for start in range(n):
            order: list[int] = []
            j = start
            while len(order) < count:
                if owners[j] not in order:
                    order.append(owners[j])
                j = (j + 1) % n
            self._successors.append(tuple(order))

    def order(self, key: str, now: float) -> tuple[list[M], list[M], str]:
        """(available members in the order to try, members that are out, how the first was chosen:
        single, affinity, overflow, shuffle or least_busy)."""
        members = self.members
        if len(members) == 1:
            m = members[0]
            return ([m], [], "single") if m.available(now) else ([], [m], "single")
        up = [m for m in members if m.available(now)]
        out = [m for m in members if not m.available(now)] if len(up) < len(members) else []
        if not up:
            return [], out, self.strategy
        if self.strategy == "prefix-affinity":
            ready, how = self._affinity(key, up)
        elif self.strategy == "least-busy":
            rnd = self.rng.random
            ready, how = sorted(up, key=lambda m: (m.load() / m.weight, rnd())), "least_busy"
        else:
            ready, how = self._shuffle(up), "shuffle"
        return ready, out, how

    def _affinity(self, key: str, up: list[M]) -> tuple[list[M], str]:
        members = self.members
        i = bisect.bisect(self._points, _h64(key.encode())) % len(self._points)
        ring = [members[j] for j in self._successors[i]]
        if len(up) < len(members):
            ring = [m for m in ring if m in up]
        loads = [m.load() for m in ring]
        total_load = sum(loads)
        if not total_load:  # idle group: the conversation's own replica is under any bound
            return ring, "affinity"
        total_weight = sum(m.weight for m in ring)
        for k, m in enumerate(ring):
            capacity = math.ceil(LOAD_FACTOR * (total_load + 1) * m.weight / total_weight)
            if loads[k] + 1 <= capacity:
                if k == 0:
                    return ring, "affinity"
                return [m, *ring[:k], *ring[k + 1 :]], "overflow"
        return ring, "affinity"  # unreachable in practice: some member is always under its share

    def _shuffle(self, up: list[M]) -> list[M]:
        """A weighted random permutation (Efraimidis-Spirakis): the first is drawn by weight, the
        rest follow as in-group fallbacks."""
        rnd = self.rng.random
        return sorted(up, key=lambda m: rnd() ** (1.0 / m.weight), reverse=True)
