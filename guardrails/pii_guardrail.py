"""The PII guardrail: mask before any model sees a request, restore for the caller.

Every text part of a request is scanned (system, user, assistant history, tool results, text
parts of content arrays, tool-call arguments, completion prompts). Each entity type gets the
policy's action: mask (reversible placeholder), redact, hash, block or allow. Fails closed: if
analysis errors or times out, the request is refused with 503 and never forwarded.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from policies.models import EntityRule, PiiPolicy
from policies.store import PolicyStore

from .base import ALLOW, Decision, GuardContext, Guardrail, Verdict
from .pii.analyzer import AnalysisFailed, PiiAnalyzer
from .pii.answer_ner import AnswerNer
from .pii.national_ids import NATIONAL_ID_ENTITIES
from .pii.placeholders import PLACEHOLDER, StreamRestorer
from .pii.structure import Span, propagate_names
from .pii.vault import Vault
from .request_shapes import text_slots

#: Entities checked in model output without NER (fast enough for streams).
STRUCTURED = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS")
DEFAULT_ENTITIES = ["PERSON", "LOCATION", "NRP", "STREET_ADDRESS", *STRUCTURED, *NATIONAL_ID_ENTITIES]


def _select(spans: list[Span]) -> list[Span]:
    """Overlapping spans merged into one that covers them all, labelled by the best-scored (then
    longest) of them: masking the union leaks no part of either (a house number that one
    recognizer took for a phone number, the street that another found after it)."""
    merged: list[Span] = []
    best: Span | None = None
    for s in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged and s.start < merged[-1].end:
            last = merged[-1]
            assert best is not None
            if (s.score, s.end - s.start) > (best.score, best.end - best.start):
                best = s
            merged[-1] = Span(last.start, max(last.end, s.end), best.entity, best.score)
        else:
            best = s
            merged.append(s)
    return merged


class PiiGuardrail(Guardrail):
    name = "pii"

    def __init__(
        self,
        analyzer: PiiAnalyzer,
        vault: Vault,
        policies: PolicyStore,
        is_hosted: Callable[[str | None], bool] = lambda _: False,
    ) -> None:
        self.analyzer = analyzer
        self.vault = vault
        self.policies = policies
        self.is_hosted = is_hosted
        self._hash_key = hashlib.sha256(b"mixguard-pii-hash:" + vault._mac_key).digest()
        self._background: set[asyncio.Task[Any]] = set()

    def bind_redis(self, client: Any) -> None:
        """Called once the gateway's Redis is up: the vault and the analysis cache live there."""
        self.vault.redis = client
        self.analyzer.redis = client
        self.analyzer.warm_up()

    def close(self) -> None:
        self.analyzer.close()

    def _policy(self, ctx: GuardContext) -> PiiPolicy:
        return self.policies.get(ctx.policy).policy.pii

    @staticmethod
    def _entities(policy: PiiPolicy) -> list[str]:
        return sorted({*DEFAULT_ENTITIES, *policy.entities.keys(), *(r.entity for r in policy.recognizers)})

    def _conversation(self, ctx: GuardContext, kind: str, body: dict[str, Any]) -> str:
        if ctx.conversation_id:
            return hashlib.sha256(ctx.conversation_id.encode()).hexdigest()[:24]
        # Derived from the conversation's opening: the same in every later turn.
        if kind == "chat":
            msgs = body.get("messages") or []
            first_sys = next((m.get("content") for m in msgs if m.get("role") in ("system", "developer")), "")
            first_user = next((m.get("content") for m in msgs if m.get("role") == "user"), "")
            seed = repr((first_sys, first_user))
        else:
            seed = repr(body.get("prompt"))[:2000]
        return hmac.new(self._hash_key, seed.encode(), hashlib.sha256).hexdigest()[:24]

    async def scan_input(self, ctx: GuardContext, kind: str, body: dict[str, Any]) -> Verdict:
        policy = self._policy(ctx)
        if not policy.enabled:
            return ALLOW
        slots = text_slots(kind, body, ctx.scanned_fields)  # type: ignore[arg-type]
        if not slots:
            ctx.pii_checked = True
            return ALLOW
        try:
            found = await self.analyzer.analyze_many(
                [s.text for s in slots], self._entities(policy), policy.analyze_timeout_s, ctx.key_id
            )
        except AnalysisFailed as exc:
            ctx.decisions.append(Decision("pii", "pii.analysis", "block", 1.0, "enforce", {"reason": str(exc)}))
            return Verdict(
                "unavailable",
                "pii.analysis",
                f"PII guardrail unavailable, request refused: {exc}",
                "guardrail_unavailable",
            )
        rules: dict[str, EntityRule] = {}

        def rule_of(entity: str) -> EntityRule:  # called for every span: built once per request
            r = rules.get(entity)
            if r is None:
                r = rules[entity] = policy.rule(entity)
            return r

        found = propagate_names([s.text for s in slots], found, lambda e: rule_of(e).threshold or 0)
        allow = {a.lower() for a in policy.allow_list}
        plans: list[list[tuple[Span, str]]] = []
        counts: Counter[tuple[str, str]] = Counter()
        to_mask: dict[tuple[str, str], None] = {}
        detected: set[str] = set()
        allowed_values: dict[str, list[str]] = {}
        monitored: Counter[tuple[str, str]] = Counter()
        blocked_types: set[str] = set()
        for slot, spans in zip(slots, found):
            literal = [Span(m.start(), m.end(), "LITERAL", 2.0) for m in PLACEHOLDER.finditer(slot.text)]
            keep = []
            for s in spans:
                rule = rule_of(s.entity)
                if s.score < (rule.threshold or 0):
                    continue
                value = slot.text[s.start : s.end]
                if value.strip().lower() in allow:
                    continue
                detected.add(s.entity)
                if rule.action == "allow":
                    allowed_values.setdefault(s.entity, []).append(value)
                    continue
                if rule.mode == "monitor":  # decide and record, change nothing
                    monitored[(s.entity, rule.action)] += 1
                    allowed_values.setdefault(s.entity, []).append(value)
                    continue
                keep.append(s)
                if rule.action == "block":
                    blocked_types.add(s.entity)
            plan: list[tuple[Span, str]] = []
            for s in _select(literal + keep):
                action: str = "mask" if s.entity == "LITERAL" else rule_of(s.entity).action
                plan.append((s, action))
                counts[(s.entity, action)] += 1
                if action == "mask":
                    to_mask[(s.entity, slot.text[s.start : s.end])] = None
            plans.append(plan)
        for (entity, action), n in sorted(counts.items()):
            ctx.decisions.append(Decision("pii", f"pii.{entity}", action, 1.0, "enforce", {"count": n}))
        for (entity, action), n in sorted(monitored.items()):
            ctx.decisions.append(Decision("pii", f"pii.{entity}", action, 1.0, "monitor", {"count": n}))
        ctx.pii_detected = detected
        ctx.pii_allowed_values = allowed_values  # raw, in memory only: residency may redact them
        blocked = sorted(blocked_types)
        if blocked:
            return Verdict(
                "block",
                f"pii.{blocked[0]}",
                f"Request blocked by policy '{ctx.policy}': rule pii.{blocked[0]} (found {', '.join(blocked)})",
                "pii_blocked",
            )
        mapping: dict[str, str] = {}
        if to_mask:
            conv = self._conversation(ctx, kind, body)
            items = list(to_mask)
            try:
                phs = await self.vault.placeholders(ctx.key_id, conv, items)
            except Exception as exc:  # Redis down: without the vault nothing can be masked reversibly
                ctx.decisions.append(
                    Decision("pii", "pii.vault", "block", 1.0, "enforce", {"reason": type(exc).__name__})
                )
                return Verdict(
                    "unavailable",
                    "pii.vault",
                    f"PII vault unavailable ({type(exc).__name__}), request refused",
                    "guardrail_unavailable",
                )
            by_value = dict(zip(items, phs))
            mapping = {ph: value for (_, value), ph in by_value.items()}
        else:
            by_value = {}
        sent: list[str] = []
        for slot, plan in zip(slots, plans):
            text = slot.text
            for s, action in reversed(plan):
                value = text[s.start : s.end]
                text = text[: s.start] + self._replacement(s.entity, value, action, by_value) + text[s.end :]
            if plan:
                slot.write(text)
            sent.append(text)
        ctx.pii_map = mapping
        ctx.pii_masked_text = "\n".join(sent)
        pii_counts: Counter[str] = Counter()
        for (e, _), n in [*counts.items(), *monitored.items()]:
            if e != "LITERAL":
                pii_counts[e] += n
        ctx.pii_counts = dict(pii_counts)
        ctx.pii_checked = True
        return ALLOW

    def _replacement(self, entity: str, value: str, action: str, by_value: dict[tuple[str, str], str]) -> str:
        if action == "mask":
            return by_value[(entity, value)]
        if action == "hash":
            return f"[HASH:{hmac.new(self._hash_key, value.encode(), hashlib.sha256).hexdigest()[:12]}]"
        return f"[REDACTED:{entity}]"

    def output_filter(self, ctx: GuardContext) -> StreamRestorer | None:
        policy = self._policy(ctx)
        if not policy.enabled:
            return None
        restore = policy.restore and (policy.restore_on_fallback or not self.is_hosted(ctx.backend))
        mapping = ctx.pii_map if restore else {}
        scan = hold = ner = None
        if policy.output_action != "allow":
            scan = self._invented_pii_scanner(ctx, policy)
            ner = self._answer_ner(ctx, policy)
            hold = _hold_name_and_identifier_tail if ner is not None else _hold_identifier_tail
        if not mapping and scan is None:
            return None
        return StreamRestorer(mapping, scan, hold, ner)

    def _answer_ner(self, ctx: GuardContext, policy: PiiPolicy) -> AnswerNer | None:
        """Names, places and addresses in the answer (NER and the rest of the analyzer), replaced
        per `output_action`; None when the policy's output entities are all structured."""
        entities = [e for e in policy.output_entities if e not in STRUCTURED and policy.rule(e).action != "allow"]
        if not entities:
            return None
        allow = {a.lower() for a in policy.allow_list}
        wanted = set(entities)
        # the caller's own values (masked or allowed in this request) are theirs to read back
        callers_own = set(ctx.pii_map.values()) | {v for vs in ctx.pii_allowed_values.values() for v in vs}
        analyzer, timeout = self.analyzer, policy.analyze_timeout_s

        async def analyze(text: str) -> list[Span]:
            return (await analyzer.analyze_many([text], entities, timeout, ctx.key_id))[0]

        sent = ctx.pii_masked_text

        def keep(s: Span, value: str) -> bool:
            return (
                s.entity in wanted
                and s.score >= (policy.rule(s.entity).threshold or 0)
                and value.strip().lower() not in allow
                and not _callers_own(value, callers_own)
                and not _judged_in_request(value, sent)
            )

        def on_replace(s: Span) -> None:
            ctx.decisions.append(
                Decision("pii", f"pii.output.{s.entity}", policy.output_action, s.score, "enforce", {})
            )

        ner = AnswerNer(
            lambda text: analyze(text) if not _judged_in_request(text, sent) else _no_spans(),
            lambda text: analyzer.analyze_sync(text, entities),
            keep,
            lambda entity: _output_replacement(policy.output_action, entity),
            on_replace,
        )
        ctx.answer_ner.append(ner)
        return ner

    def answered(self, ctx: GuardContext, texts: list[str]) -> None:
        """Analyse the answer the caller just received, in the background: it comes back as the
        assistant message of the next turn, which then costs a cache hit instead of an analysis
        (so turn N costs about one new user message, as turn 1 does).

        Only when a worker is free: most answers never come back (one-shot calls), and under load
        this work would be a third analysis per request taken from live ones (prompt, answer
        names, prewarm). Skipped, the next turn analyses its history itself, as without it."""
        policy = self._policy(ctx)
        texts = [t for t in texts if t and t.strip()]
        if not policy.enabled or not texts:
            return
        if not self.analyzer.has_spare_worker():
            self.analyzer.counts["prewarm_skipped"] += len(texts)
            return
        task = asyncio.get_running_loop().create_task(
            self.analyzer.analyze_many(texts, self._entities(policy), policy.analyze_timeout_s, ctx.key_id)
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # a failed prewarm is only a cache miss

    def audit_redactor(self, ctx: GuardContext) -> Callable[[str], str] | None:
        """For the audit record: the model's raw answer with invented identifiers redacted, and
        the names the answer scan replaced for the caller."""
        policy = self._policy(ctx)
        if not policy.enabled:
            return None
        scan = self._invented_pii_scanner(ctx, policy, record=False)

        def redact(text: str) -> str:
            for ner in ctx.answer_ner:
                text = ner.redact_recorded(text)
            return scan(text)

        return redact

    def _invented_pii_scanner(self, ctx: GuardContext, policy: PiiPolicy, record: bool = True) -> Callable[[str], str]:
        allow = {a.lower() for a in policy.allow_list}
        entities = [e for e in policy.output_entities if e in STRUCTURED and policy.rule(e).action != "allow"]

        def scan(text: str) -> str:
            if not any(c.isdigit() or c in "@\uff20\ufe6b" for c in text):
                return text
            spans = [
                s
                for s in self.analyzer.structured_scan(text, entities)
                if s.score >= (policy.rule(s.entity).threshold or 0)
                and text[s.start : s.end].lower() not in allow
                and not PLACEHOLDER.search(text[s.start : s.end])
            ]
            for s in reversed(_select(spans)):
                text = text[: s.start] + _output_replacement(policy.output_action, s.entity) + text[s.end :]
                if record:
                    ctx.decisions.append(
                        Decision("pii", f"pii.output.{s.entity}", policy.output_action, s.score, "enforce", {})
                    )
            return text

        return scan


def _callers_own(value: str, own: set[str]) -> bool:
    """Whether a name in the answer is made of the caller's own values ("Ms Okonkwo" for the
    caller's "Adaeze Okonkwo"): theirs to read back, not a name the model brought."""
    words = [w for w in value.replace(".", " ").split() if w.lower() not in _TITLES]
    return bool(words) and (value.strip() in own or all(any(w in v.split() for v in own) for w in words))


_TITLES = {
    "mr",
    "mrs",
    "ms",
    "mx",
    "miss",
    "dr",
    "prof",
    "sir",
    "madam",
    "dame",
    "herr",
    "frau",
    "mme",
    "mlle",
    "sr",
    "sra",
}


def _judged_in_request(value: str, sent: str) -> bool:
    """Whether `value` stands, unmasked and whole, in the request as the model received it: the input
    analysis judged it there, with all its context ("Cordialement" closing a French letter, a name the
    policy allows), and one decision holds for the conversation. Quoting the request is no invention."""
    v = value.strip()
    if not v or v not in sent:
        return False
    return re.search(rf"(?<!\w){re.escape(v)}(?!\w)", sent) is not None


async def _no_spans() -> list[Span]:
    return []


def _output_replacement(action: str, entity: str) -> str:
    """What a value the model wrote becomes: `[REDACTED:PERSON]` (redact) or `<PERSON>` (mask, as
    Presidio's replace operator writes it; never a placeholder of the vault, so nothing restores it)."""
    return f"<{entity}>" if action == "mask" else f"[REDACTED:{entity}]"


def _word_start(text: str, cut: int) -> int:
    """Start of the whitespace-separated word that ends right before `cut` (0 if none)."""
    return max(text.rfind(" ", 0, cut - 1), text.rfind("\n", 0, cut - 1), text.rfind("\t", 0, cut - 1)) + 1


def _hold_identifier_tail(text: str, limit: int = 64) -> int:
    """Where to stop releasing streamed text for the output scan.

    The trailing word may be unfinished, so it is held; before it, whitespace-separated groups
    with digits (a card, phone or IBAN split in groups) are held too, at most `limit` characters.
    Plain words are released at once.
    """
    cut = _word_start(text, len(text) + 1)
    floor = max(0, len(text) - limit)
    if cut == 0:
        return floor
    while cut > floor:
        prev = _word_start(text, cut)
        group = text[prev : cut - 1]
        if group and len(group) <= 12 and any(c.isdigit() for c in group):
            cut = prev
        else:
            break
    return max(cut, floor)


def _hold_name_and_identifier_tail(text: str, limit: int = 64) -> int:
    """As _hold_identifier_tail, and a run of capitalised words before the cut is held too: the
    next chunk may continue a name ("Zsófia" + " Kertész") that the scan must see whole."""
    cut = _hold_identifier_tail(text, limit)
    floor = max(0, len(text) - limit)
    while cut > floor:
        prev = _word_start(text, cut)
        word = text[prev:cut].strip()
        if word[:1].isupper():
            cut = prev
        else:
            break
    return max(cut, floor)
