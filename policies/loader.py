"""Loads `policies/*.yaml` into Policy models, with file, line and field on any error."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from .models import Policy

#: A policy file is a few KB (the support policy with 1,000 examples is about 120 KB).
MAX_POLICY_BYTES = 2 * 1024 * 1024
#: YAML aliases expand on load: a few hundred bytes of nested aliases make gigabytes ("billion
#: laughs"). Policies have no use for many of them.
MAX_ALIASES = 32


class PolicyError(Exception):
    pass


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    path: str
    version: str  # content hash, recorded with every request


def _line(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int:
    node = root
    line = 1 if root is None else root.start_mark.line + 1
    for part in loc:
        nxt = None
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            nxt = node.value[part]
        if nxt is None:
            break
        node, line = nxt, nxt.start_mark.line + 1
    return line


def _check_aliases(path: Path, text: str) -> None:
    """Refuse a file with more aliases than MAX_ALIASES before anything expands them (parsing events
    is linear in the text)."""
    count = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            count += 1
            if count > MAX_ALIASES:
                line = event.start_mark.line + 1 if event.start_mark else 1
                raise PolicyError(f"{path}:{line}: more than {MAX_ALIASES} YAML aliases: refused (alias expansion)")


def load_policy_file(path: Path) -> LoadedPolicy:
    try:
        size = path.stat().st_size
        if size > MAX_POLICY_BYTES:
            raise PolicyError(f"{path}:1: {size} bytes: a policy file may hold at most {MAX_POLICY_BYTES}")
        text = path.read_text()
    except OSError as exc:
        raise PolicyError(f"{path}:1: cannot read: {exc.strerror}") from None
    try:
        _check_aliases(path, text)
        root = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PolicyError(f"{path}:{mark.line + 1 if mark else 1}: not valid YAML") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{path}:1: a policy file must be a mapping (name:, pii:, topics:, ...)")
    data.setdefault("name", path.stem)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{path}:{_line(root, tuple(e['loc']))}: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
        ]
        raise PolicyError("\n".join(lines)) from None
    return LoadedPolicy(policy, str(path), hashlib.sha256(text.encode()).hexdigest()[:12])


def builtin_default() -> LoadedPolicy:
    return LoadedPolicy(Policy(name="default"), "<built-in>", "builtin")


def policy_schema() -> str:
    schema = Policy.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mixguard policy"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
