"""The stand-in's radix prefix cache behaves like SGLang's RadixAttention bookkeeping."""

from __future__ import annotations

from sglang_backend.radix_cache import RadixCache
from sglang_backend.tokenizer import load_tokenizer, render_mixtral_chat


def test_shared_prefix_is_matched_and_divergence_splits():
    c = RadixCache(1000)
    assert c.insert([1, 2, 3, 4, 5]) == 0
    assert c.match_prefix([1, 2, 3, 9]) == 3
    assert c.insert([1, 2, 3, 9, 9]) == 3
    assert c.match_prefix([1, 2, 3, 4, 5, 6]) == 5
    assert c.match_prefix([1, 2, 3, 9, 9]) == 5
    assert c.total_tokens == 7


def test_lru_leaf_is_evicted_first_when_over_capacity():
    c = RadixCache(10)
    c.insert([1, 2, 3, 4])
    c.insert([5, 6, 7, 8])
    c.match_prefix([1, 2, 3, 4])  # touch the first: the second is now least recently used
    c.insert([9, 10, 11, 12])
    assert c.total_tokens <= 10
    assert c.match_prefix([1, 2, 3, 4]) == 4
    assert c.match_prefix([5, 6, 7, 8]) == 0
    assert c.evicted_tokens == 4


def test_multi_turn_chat_prefix_is_reused_with_real_tokenizer():
    tok = load_tokenizer()
    c = RadixCache(100_000)
    turn1 = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello there, how are you?"}]
    ids1 = tok.encode(render_mixtral_chat(turn1), add_special_tokens=False).ids
    out = tok.encode("Fine, thanks.", add_special_tokens=False).ids
    c.insert(ids1 + out)
    turn2 = turn1 + [{"role": "assistant", "content": "Fine, thanks."}, {"role": "user", "content": "Good."}]
    ids2 = tok.encode(render_mixtral_chat(turn2), add_special_tokens=False).ids
    assert c.match_prefix(ids2) >= len(ids1)
    assert tok.encode("[INST] Hello", add_special_tokens=False).ids[:3] == [733, 16289, 28793]
