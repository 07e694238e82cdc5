"""`mixguard policy validate | test | explain | schema`: the security team's tools.

`test` and `explain` run the same matcher and PII analyzer code as the gateway, so a policy that
passes here behaves the same in production.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .loader import LoadedPolicy, PolicyError, load_policy_file, policy_schema


def _files(directory: str) -> list[Path]:
    d = Path(directory)
    if d.is_file():
        return [d]
    if not d.is_dir():
        raise SystemExit(f"mixguard policy: {directory}: no such directory")
    return sorted(d.glob("*.yaml"))


def _load_all(directory: str) -> tuple[list[LoadedPolicy], list[str]]:
    good, bad = [], []
    for p in _files(directory):
        try:
            good.append(load_policy_file(p))
        except PolicyError as exc:
            bad.append(str(exc))
    return good, bad


def cmd_validate(args: argparse.Namespace) -> int:
    good, bad = _load_all(args.dir)
    names: dict[str, str] = {}
    for lp in good:
        if lp.policy.name in names:
            bad.append(f"{lp.path}:1: name: '{lp.policy.name}' is also defined in {names[lp.policy.name]}")
        names[lp.policy.name] = lp.path
        t = lp.policy.topics
        print(
            f"ok    {lp.policy.name}@{lp.version}  {lp.path}  "
            f"(topics: {len(t.deny)} deny, {len(t.allow)} allow; pii entities: {len(lp.policy.pii.entities)}; "
            f"contract: {'yes' if lp.policy.contract else 'no'}; tests: {len(lp.policy.tests)})"
        )
    for msg in bad:
        for line in msg.splitlines():
            print(f"ERROR {line}")
    schema_file = Path(args.dir) / "schema.json"
    if schema_file.is_file() and schema_file.read_text() != policy_schema():
        print(f"note  {schema_file} is out of date: run `mixguard policy schema -o {schema_file}`")
    print(f"{len(good)} valid, {len(bad)} invalid")
    return 1 if bad else 0


@dataclass
class Evaluation:
    blocked_by: list[str] = field(default_factory=list)  # enforce rules that refuse the text
    monitored: list[str] = field(default_factory=list)  # monitor rules that would have fired
    entities: dict[str, list[tuple[float, str, str]]] = field(default_factory=dict)  # type -> (score, action, mode)
    topic_scores: list[Any] = field(default_factory=list)


class Evaluator:
    """Loads the embedding model and the PII engine once, on first need."""

    def __init__(self, pii: bool = True, embedding_model_dir: str | None = None) -> None:
        self.pii = pii
        self.model_dir = embedding_model_dir
        self._encode: Callable[[str], Any] | None = None
        self._analyzers: dict[str, Any] = {}

    def encoder(self) -> Callable[[str], Any]:
        if self._encode is None:
            from guardrails.topics.embedder import shared_embedder

            self._encode = shared_embedder(self.model_dir).encode
        return self._encode

    def _pii(self, lp: LoadedPolicy) -> Any:
        key = f"{lp.policy.name}@{lp.version}"
        if key not in self._analyzers:
            from guardrails.pii.analyzer import PiiAnalyzer, custom_recognizer
            from guardrails.pii.engine import DEFAULT_RECOGNIZERS, build_analyzer

            customs = [custom_recognizer(r) for r in lp.policy.pii.recognizers]
            engine = build_analyzer(
                enabled=DEFAULT_RECOGNIZERS | set(lp.policy.pii.enable_presidio_recognizers), extra_recognizers=customs
            )
            self._analyzers[key] = PiiAnalyzer(engine)
        return self._analyzers[key]

    def evaluate(self, lp: LoadedPolicy, text: str, output: bool) -> Evaluation:
        from guardrails.topics.matcher import TopicMatcher

        ev = Evaluation()
        t = lp.policy.topics
        if not t.empty and (not output or t.check_output):
            m = TopicMatcher(t, self.encoder() if any(r.examples for r in [*t.deny, *t.allow]) else None)
            vec = m.vector(text) if m.semantic else None
            ev.topic_scores = m.evaluate(text, vec, output)
            for s in ev.topic_scores:
                if s.fired:
                    (ev.blocked_by if s.mode == "enforce" else ev.monitored).append(s.rule_id)
        pii = lp.policy.pii
        if self.pii and pii.enabled:
            from guardrails.pii_guardrail import DEFAULT_ENTITIES, STRUCTURED

            an = self._pii(lp)
            allow = {a.lower() for a in pii.allow_list}
            if output:
                spans = an.structured_scan(text, STRUCTURED)
            else:
                ents = sorted({*DEFAULT_ENTITIES, *pii.entities.keys(), *(r.entity for r in pii.recognizers)})
                spans = an.analyze_sync(text, ents)
            for s in spans:
                rule = pii.rule(s.entity)
                if s.score < (rule.threshold or 0) or text[s.start : s.end].strip().lower() in allow:
                    continue
                action = ("redact" if pii.output_action == "redact" else "allow") if output else rule.action
                ev.entities.setdefault(s.entity, []).append((round(s.score, 3), action, rule.mode or "enforce"))
                if action == "block":
                    (ev.blocked_by if rule.mode == "enforce" else ev.monitored).append(f"pii.{s.entity}")
        return ev


def _policies_by_name(directory: str) -> dict[str, LoadedPolicy]:
    good, bad = _load_all(directory)
    if bad:
        print("\n".join(bad), file=sys.stderr)
        raise SystemExit(1)
    return {lp.policy.name: lp for lp in good}


def cmd_test(args: argparse.Namespace) -> int:
    policies = _policies_by_name(args.dir)
    ev = Evaluator(pii=not args.no_pii)
    passed = failed = 0
    for name, lp in sorted(policies.items()):
        if not lp.policy.tests:
            continue
        print(f"{name}@{lp.version} ({lp.path})")
        for i, case in enumerate(lp.policy.tests):
            label = case.name or f"test {i + 1}"
            text = case.input if case.input is not None else case.output
            assert text is not None
            res = ev.evaluate(lp, text, output=case.output is not None)
            got = "block" if res.blocked_by else "allow"
            problems = []
            if got != case.expect:
                problems.append(
                    f"expected {case.expect}, got {got}"
                    + (f" (by {', '.join(res.blocked_by)})" if res.blocked_by else "")
                )
            if case.rule and case.rule not in res.blocked_by + res.monitored:
                fired = res.blocked_by + res.monitored
                problems.append(f"expected rule {case.rule} to fire; fired: {', '.join(fired) or 'none'}")
            if case.entities is not None:
                missing = sorted(set(case.entities) - set(res.entities))
                if missing:
                    problems.append(
                        f"expected entities {', '.join(missing)}; found: {', '.join(sorted(res.entities)) or 'none'}"
                    )
            if problems:
                failed += 1
                print(f"  FAIL  {label}: " + "; ".join(problems))
                for s in res.topic_scores:
                    print(f"          {s.rule_id:<28} {s.score:.3f} (threshold {s.threshold:.2f}, {s.via})")
            else:
                passed += 1
                print(f"  pass  {label}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_explain(args: argparse.Namespace) -> int:
    policies = _policies_by_name(args.dir)
    if args.policy not in policies:
        print(
            f"mixguard policy: no policy '{args.policy}' in {args.dir} (have: {', '.join(sorted(policies))})",
            file=sys.stderr,
        )
        return 2
    lp = policies[args.policy]
    res = Evaluator(pii=not args.no_pii).evaluate(lp, args.text, output=args.output)
    print(f"policy {lp.policy.name}@{lp.version} ({lp.path}), checking the {'output' if args.output else 'input'}")
    if res.topic_scores:
        print("topic rules:")
        for s in res.topic_scores:
            why = {
                "keyword": f"keyword '{s.evidence}'",
                "regex": f"regex {s.evidence}",
                "semantic": f"closest example: '{s.evidence}'",
                "none": "no match",
            }[s.via]
            verdict = ("FIRES" if s.fired else "-") + ("" if s.mode == "enforce" else " (monitor)")
            print(
                f"  {s.rule_id:<28} {s.kind:<5} score {s.score:.3f}  threshold {s.threshold:.2f}  {verdict:<16} {why}"
            )
    else:
        print("topic rules: none apply")
    if res.entities:
        print("PII entities:")
        for ent, hits in sorted(res.entities.items()):
            for score, action, mode in hits:
                print(f"  {ent:<20} score {score:.2f}  action {action}{'' if mode == 'enforce' else ' (monitor)'}")
    elif not args.no_pii:
        print("PII entities: none above threshold")
    decision = f"BLOCK by {', '.join(res.blocked_by)}" if res.blocked_by else "ALLOW"
    if res.monitored:
        decision += f" (monitor rules that would fire: {', '.join(res.monitored)})"
    print(f"decision: {decision}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    text = policy_schema()
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("policy", help="validate, test and explain policy files")
    psub = p.add_subparsers(dest="policy_cmd", required=True)
    v = psub.add_parser("validate", help="check every policy file; exit 1 on any error")
    v.add_argument("dir", nargs="?", default="policies")
    v.set_defaults(func=cmd_validate)
    t = psub.add_parser("test", help="run the test cases kept in the policy files; exit 1 on failure")
    t.add_argument("dir", nargs="?", default="policies")
    t.add_argument("--no-pii", action="store_true", help="skip PII analysis (faster; topic rules only)")
    t.set_defaults(func=cmd_test)
    e = psub.add_parser("explain", help="every rule's score for a text, and why it fired")
    e.add_argument("--policy", required=True)
    e.add_argument("--dir", default="policies")
    e.add_argument("--output", action="store_true", help="treat the text as a model answer")
    e.add_argument("--no-pii", action="store_true")
    e.add_argument("text")
    e.set_defaults(func=cmd_explain)
    s = psub.add_parser("schema", help="print (or write) the JSON Schema of policy files")
    s.add_argument("-o", "--output")
    s.set_defaults(func=cmd_schema)
