"""A token-level radix tree with LRU eviction, as SGLang's RadixAttention keeps its KV cache.

The stand-in uses it to report `usage.prompt_tokens_details.cached_tokens` the way SGLang does:
the number of leading prompt tokens whose KV entries were already resident. Capacity is counted
in tokens; when an insert would exceed it, least-recently-used leaves are evicted first.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

_clock = itertools.count()


@dataclass(eq=False)
class TreeNode:
    key: tuple[int, ...] = ()
    parent: TreeNode | None = None
    children: dict[int, TreeNode] = field(default_factory=dict)
    last_access: int = 0

    def touch(self) -> None:
        self.last_access = next(_clock)


def _common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class RadixCache:
    def __init__(self, capacity_tokens: int = 1_000_000) -> None:
        self.capacity_tokens = capacity_tokens
        self.root = TreeNode()
        self.total_tokens = 0
        self.evicted_tokens = 0

    def match_prefix(self, tokens: Sequence[int]) -> int:
        """Length of the longest cached prefix of `tokens`; touches the matched path."""
        node, matched = self.root, 0
        while matched < len(tokens):
            child = node.children.get(tokens[matched])
            if child is None:
                break
            n = _common_prefix_len(child.key, tokens[matched : matched + len(child.key)])
            child.touch()
            matched += n
            if n < len(child.key):
                break
            node = child
        return matched

    def insert(self, tokens: Sequence[int]) -> int:
        """Cache `tokens`; returns how many of them were already cached."""
        tokens = tuple(tokens)
        node, pos = self.root, 0
        while pos < len(tokens):
            child = node.children.get(tokens[pos])
            if child is None:
                new = TreeNode(key=tokens[pos:], parent=node)
                new.touch()
                node.children[tokens[pos]] = new
                self.total_tokens += len(new.key)
                break
            n = _common_prefix_len(child.key, tokens[pos : pos + len(child.key)])
            child.touch()
            if n < len(child.key):
                self._split(child, n)
            pos += n
            node = child
        else:
            pass
        if self.total_tokens > self.capacity_tokens:
            self.evict(self.total_tokens - self.capacity_tokens)
        return pos

    def _split(self, node: TreeNode, at: int) -> None:
        """Split `node` so that its first `at` tokens form their own node (node keeps the head)."""
        tail = TreeNode(key=node.key[at:], parent=node, children=node.children, last_access=node.last_access)
        for c in tail.children.values():
            c.parent = tail
        node.key = node.key[:at]
        node.children = {tail.key[0]: tail}

    def _leaves(self) -> list[TreeNode]:
        out, stack = [], [self.root]
        while stack:
            n = stack.pop()
            if n.children:
                stack.extend(n.children.values())
            elif n is not self.root:
                out.append(n)
        return out

    def evict(self, num_tokens: int) -> int:
        """Evict at least `num_tokens` tokens, least recently used leaves first."""
        import heapq

        leaves = [(n.last_access, id(n), n) for n in self._leaves()]
        heapq.heapify(leaves)
        freed = 0
        while freed < num_tokens and leaves:
            _, _, leaf = heapq.heappop(leaves)
            parent = leaf.parent
            assert parent is not None
            del parent.children[leaf.key[0]]
            freed += len(leaf.key)
            if parent is not self.root and not parent.children:
                heapq.heappush(leaves, (parent.last_access, id(parent), parent))
        self.total_tokens -= freed
        self.evicted_tokens += freed
        return freed

    def reset(self) -> None:
        self.root = TreeNode()
        self.total_tokens = 0
