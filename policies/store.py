"""The active policies of a running gateway, reloaded on file change or on demand.

A reload reads every file again. A file that fails validation keeps its last good version active
and its error is reported (by `GET /admin/policies` and in the log), so a bad edit never opens a
hole and never takes the gateway down. Mistakes that would change which policy applies are refused
as a whole (the last good set stays active): a policy name defined in two files (one could shadow
the other, `default` included), a directory that vanished or holds no policy, and a reload that
removes a policy an API key names. At start the same mistakes stop the gateway.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .loader import LoadedPolicy, PolicyError, builtin_default, load_policy_file

log = logging.getLogger("mixguard.policies")


@dataclass
class ReloadReport:
    loaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # file -> message (file:line: field: reason)

    @property
    def ok(self) -> bool:
        return not self.errors


class PolicyStore:
    def __init__(self, directory: str | Path, strict: bool = True, required: Iterable[str] = ()) -> None:
        """Load every `*.yaml` in `directory`; with `strict`, an invalid file raises PolicyError.
        `required`: policy names that must exist (those API keys name), now and after every reload."""
        self.directory = Path(directory)
        self.required = sorted(set(required) - {"default"})
        self.policies: dict[str, LoadedPolicy] = {}
        self.errors: dict[str, str] = {}
        self._by_file: dict[str, LoadedPolicy] = {}
        self._stamp: tuple[tuple[str, int, int], ...] = ()
        self._lock = threading.Lock()
        self.listeners: list[Callable[[dict[str, LoadedPolicy]], None]] = []
        report = self.reload()
        if strict and report.errors:
            raise PolicyError("\n".join(report.errors.values()))

    def get(self, name: str) -> LoadedPolicy:
        return self.policies.get(name) or self.policies["default"]

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob("*.yaml")) if self.directory.is_dir() else []

    def _snapshot(self) -> tuple[tuple[str, int, int], ...]:
        out = []
        for p in self._files():
            try:
                st = p.stat()
                out.append((p.name, st.st_mtime_ns, st.st_size))
            except OSError:
                continue
        return tuple(out)

    def changed(self) -> bool:
        """Cheap check (stat only) used by the watcher."""
        return self._snapshot() != self._stamp

    #: a reload waits at most this long for one already running, then reports that it did not run
    LOCK_TIMEOUT_S = 10.0

    def reload(self) -> ReloadReport:
        report = ReloadReport()
        if not self._lock.acquire(timeout=self.LOCK_TIMEOUT_S):
            report.errors[str(self.directory)] = f"{self.directory}: another reload is still running: not reloaded"
            return report
        try:
            return self._reload(report)
        finally:
            self._lock.release()

    def _reload(self, report: ReloadReport) -> ReloadReport:
        stamp = self._snapshot()
        by_file: dict[str, LoadedPolicy] = {}
        for p in self._files():
            try:
                lp = load_policy_file(p)
            except PolicyError as exc:
                report.errors[p.name] = str(exc)
                if p.name in self._by_file:
                    by_file[p.name] = self._by_file[p.name]  # keep the last good version
                continue
            old = self._by_file.get(p.name)
            (report.unchanged if old and old.version == lp.version else report.loaded).append(lp.policy.name)
            by_file[p.name] = lp
        report.removed = [lp.policy.name for f, lp in self._by_file.items() if f not in by_file]
        refused = self._refusal(by_file)
        if refused:  # the whole reload: the last good set stays active
            report.errors.update(refused)
            report.loaded, report.unchanged, report.removed = [], [], []
            self.errors, self._stamp = report.errors, stamp  # retried when the files change again
            for msg in refused.values():
                log.error("policy reload refused, the last good set stays active: %s", msg)
            return report
        policies = {lp.policy.name: lp for lp in by_file.values()}
        policies.setdefault("default", builtin_default())
        self.policies, self._by_file, self._stamp, self.errors = policies, by_file, stamp, report.errors
        for msg in report.errors.values():
            log.error("policy file rejected, last good version stays active: %s", msg)
        if report.loaded or report.removed:
            log.info("policies loaded: %s", ", ".join(f"{n}@{self.policies[n].version}" for n in sorted(self.policies)))
            for fn in self.listeners:
                fn(self.policies)
        return report

    def _refusal(self, by_file: dict[str, LoadedPolicy]) -> dict[str, str]:
        """Why this set of files may not become active (file -> message), or nothing."""
        if not self.directory.is_dir():
            return {str(self.directory): f"{self.directory}: policies_dir does not exist"}
        if not by_file:
            return {str(self.directory): f"{self.directory}: policies_dir holds no valid policy file (*.yaml)"}
        files: dict[str, list[str]] = {}
        for f, lp in sorted(by_file.items()):
            files.setdefault(lp.policy.name, []).append(f)
        out = {}
        for name, fs in files.items():
            if len(fs) > 1:
                for f in fs:
                    out[f] = f"{f}: name: policy '{name}' is defined in {' and '.join(fs)}: reload refused"
        missing = [n for n in self.required if n not in files]
        if missing:
            out[str(self.directory)] = (
                f"{self.directory}: polic{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)} named by an "
                "API key would not exist: reload refused"
            )
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "policies": [
                {"name": n, "version": lp.version, "file": lp.path, "description": lp.policy.description}
                for n, lp in sorted(self.policies.items())
            ],
            "errors": self.errors,
        }
