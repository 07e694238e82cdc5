"""SGLang launch profiles: declarative YAML (`launch_profiles/*.yaml`) for serving Mixtral on a
given GPU model and count, checked against the memory they need before anything is launched.

A profile names a model architecture and a GPU from `launch_profiles/hardware.yaml`; the memory
arithmetic (weights, KV cache per token, tokens the KV pool holds) is computed from those numbers,
so a profile whose weights do not fit, or whose KV pool cannot hold one request of its context
length, is rejected here instead of after a 90 GB download. `render.py` turns a profile into the
exact `sglang.launch_server` command and into compose and Kubernetes manifests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PROFILES_DIR = Path(__file__).resolve().parent / "launch_profiles"
HARDWARE_FILE = "hardware.yaml"

#: bytes per value of the weights that fp8 quantizes (linear layers) and of what stays bf16
#: (embeddings, lm_head, norms, the router gate): SGLang's `--quantization fp8` on a bf16 checkpoint.
_BF16 = 2
_FP8 = 1
_KV_BYTES = {"auto": _BF16, "bf16": _BF16, "fp8_e5m2": _FP8, "fp8_e4m3": _FP8}
#: flags every profile gets: the gateway reads `usage.prompt_tokens_details.cached_tokens` (null
#: without --enable-cache-report) and SGLang's /metrics (empty without --enable-metrics).
REQUIRED_FLAGS = ("--enable-cache-report", "--enable-metrics")
PORT = 30000


_OWNED_FLAGS = {
    "--model-path",
    "--served-model-name",
    "--host",
    "--port",
    "--tp-size",
    "--tp",
    "--ep-size",
    "--dp-size",
    "--dtype",
    "--quantization",
    "--kv-cache-dtype",
    "--mem-fraction-static",
    "--chunked-prefill-size",
    "--schedule-policy",
    "--context-length",
    "--max-running-requests",
    *REQUIRED_FLAGS,
}


class ProfileError(Exception):
    """A profile or the hardware file is invalid; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    """A Mixtral-architecture model: its checkpoint and the config.json sizes the arithmetic needs."""

    path: str = Field(description="Hugging Face id or local directory of the bf16 checkpoint")
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_hidden_layers: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int = Field(gt=0)
    num_local_experts: int = Field(gt=0)
    num_experts_per_tok: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    max_position_embeddings: int = Field(gt=0)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def parameter_counts(self) -> tuple[int, int]:
        """(parameters of the linear layers fp8 can quantize, parameters that stay bf16)."""
        h, hd = self.hidden_size, self.head_dim
        attention = h * self.num_attention_heads * hd * 2 + h * self.num_key_value_heads * hd * 2
        experts = self.num_local_experts * 3 * h * self.intermediate_size
        linear = self.num_hidden_layers * (attention + experts)
        gate_and_norms = self.num_hidden_layers * (h * self.num_local_experts + 2 * h) + h
        embeddings = 2 * self.vocab_size * h  # input embeddings and the (untied) lm_head
        return linear, gate_and_norms + embeddings

    @property
    def parameters(self) -> int:
        return sum(self.parameter_counts())

    @property
    def active_parameters(self) -> int:
        """Parameters one token goes through (top-k experts of each layer)."""
        linear, rest = self.parameter_counts()
        unused = self.num_local_experts - self.num_experts_per_tok
        return linear + rest - self.num_hidden_layers * unused * 3 * self.hidden_size * self.intermediate_size


class GpuSpec(_Strict):
    product: str
    memory_mib: int = Field(gt=0, description="total memory as nvidia-smi reports it")
    k8s_product_label: str = Field(description="value of the node label nvidia.com/gpu.product")

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * 2**20


class Hardware(_Strict):
    models: dict[str, ModelSpec]
    gpus: dict[str, GpuSpec]


class Profile(_Strict):
    """One way to launch one SGLang server (one replica); fields map 1:1 to launch_server flags."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    model: str = Field(description="a key of hardware.yaml models")
    gpu: str = Field(description="a key of hardware.yaml gpus")
    gpu_count: int = Field(ge=1, description="GPUs of one replica (= tp_size x dp_size)")
    dtype: Literal["bf16", "fp8"] = Field(description="weights: bf16, or SGLang's online fp8 quantization")
    kv_cache_dtype: Literal["auto", "fp8_e5m2", "fp8_e4m3"] = "auto"
    tp_size: int = Field(ge=1)
    ep_size: int = Field(default=1, ge=1, description="expert parallel size, within the tensor parallel group")
    dp_size: int = Field(default=1, ge=1)
    mem_fraction_static: float = Field(gt=0.3, lt=0.96, description="share of GPU memory for weights + KV pool")
    chunked_prefill_size: int = Field(ge=256)
    schedule_policy: Literal["lpm", "fcfs", "dfs-weight", "lof", "random"] = Field(
        description="lpm (longest prefix match) orders the queue so shared prefixes hit the radix cache"
    )
    context_length: int = Field(ge=1024)
    max_running_requests: int | None = Field(default=None, ge=1)
    served_model_name: str | None = Field(default=None, description="default: the model's path")
    extra_args: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _parallelism(self) -> Profile:
        if self.gpu_count != self.tp_size * self.dp_size:
            raise ValueError(f"gpu_count {self.gpu_count} must equal tp_size x dp_size = {self.tp_size * self.dp_size}")
        if self.tp_size % self.ep_size:
            raise ValueError(f"ep_size {self.ep_size} must divide tp_size {self.tp_size}")
        if self.chunked_prefill_size > self.context_length:
            raise ValueError("chunked_prefill_size is larger than context_length")
        for flag in self.extra_args:
            if flag.split("=")[0] in _OWNED_FLAGS:
                raise ValueError(f"extra_args: {flag} is set by a profile field; set the field instead")
        return self


@dataclass(frozen=True)
class MemoryPlan:
    """Where one GPU's memory goes under a profile (bytes, decimal GB in `summary`)."""

    parameters: int
    active_parameters: int
    weights_bytes: int  # the whole model at the profile's dtype
    weights_bytes_bf16: int
    weights_per_gpu: int
    gpu_bytes: int
    static_bytes: int  # mem_fraction_static x GPU memory: weights + KV pool
    kv_pool_per_gpu: int
    kv_bytes_per_token: int  # per GPU (its share of the KV heads)
    kv_bytes_per_token_model: int  # the whole model, all layers and KV heads
    max_total_tokens: int  # tokens the KV pool holds (shared by all running requests)
    context_length: int

    @property
    def full_context_requests(self) -> int:
        return self.max_total_tokens // self.context_length


@dataclass(frozen=True)
class ResolvedProfile:
    """A profile with its model and GPU looked up, and the launch flags and memory plan they imply."""

    profile: Profile
    model: ModelSpec
    gpu: GpuSpec
    source: Path | None = None

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def served_model_name(self) -> str:
        return self.profile.served_model_name or self.model.path

    def launch_args(self, host: str = "0.0.0.0", port: int = PORT) -> list[str]:
        """Arguments of `python3 -m sglang.launch_server`, in a fixed order."""
        p = self.profile
        args = ["--model-path", self.model.path, "--served-model-name", self.served_model_name]
        args += ["--host", host, "--port", str(port), "--tp-size", str(p.tp_size)]
        if p.ep_size > 1:
            args += ["--ep-size", str(p.ep_size)]
        if p.dp_size > 1:
            args += ["--dp-size", str(p.dp_size)]
        args += ["--dtype", "bfloat16"]
        if p.dtype == "fp8":
            args += ["--quantization", "fp8"]
        if p.kv_cache_dtype != "auto":
            args += ["--kv-cache-dtype", p.kv_cache_dtype]
        args += ["--mem-fraction-static", f"{p.mem_fraction_static:g}"]
        args += ["--chunked-prefill-size", str(p.chunked_prefill_size)]
        args += ["--schedule-policy", p.schedule_policy, "--context-length", str(p.context_length)]
        if p.max_running_requests is not None:
            args += ["--max-running-requests", str(p.max_running_requests)]
        args += [*REQUIRED_FLAGS, *p.extra_args]
        return args

    def command(self, host: str = "0.0.0.0", port: int = PORT) -> list[str]:
        return ["python3", "-m", "sglang.launch_server", *self.launch_args(host, port)]

    def memory(self) -> MemoryPlan:
        """The arithmetic SGLang does at start: the static pool (mem_fraction_static of the GPU)
        holds this GPU's shard of the weights, the rest of it is the KV pool."""
        m, p = self.model, self.profile
        linear, rest = m.parameter_counts()
        weights = linear * (_FP8 if p.dtype == "fp8" else _BF16) + rest * _BF16
        weights_per_gpu = math.ceil(weights / p.tp_size)  # attention heads, experts and vocab all shard over TP
        kv_heads_per_gpu = math.ceil(m.num_key_value_heads / p.tp_size)  # replicated when tp > KV heads
        kv_per_value = _KV_BYTES[p.kv_cache_dtype]
        kv_token_gpu = 2 * m.num_hidden_layers * kv_heads_per_gpu * m.head_dim * kv_per_value
        kv_token_model = 2 * m.num_hidden_layers * m.num_key_value_heads * m.head_dim * kv_per_value
        static = int(self.gpu.memory_bytes * p.mem_fraction_static)
        kv_pool = static - weights_per_gpu
        return MemoryPlan(
            parameters=linear + rest,
            active_parameters=m.active_parameters,
            weights_bytes=weights,
            weights_bytes_bf16=(linear + rest) * _BF16,
            weights_per_gpu=weights_per_gpu,
            gpu_bytes=self.gpu.memory_bytes,
            static_bytes=static,
            kv_pool_per_gpu=kv_pool,
            kv_bytes_per_token=kv_token_gpu,
            kv_bytes_per_token_model=kv_token_model,
            max_total_tokens=max(kv_pool, 0) // kv_token_gpu,
            context_length=p.context_length,
        )

    def check(self) -> None:
        """Raise ProfileError when the model cannot be served as the profile says."""
        m, p, plan = self.model, self.profile, self.memory()
        where = f"{self.source or p.name}"
        if m.num_attention_heads % p.tp_size or (
            m.num_key_value_heads % p.tp_size and p.tp_size % m.num_key_value_heads
        ):
            raise ProfileError(f"{where}: tp_size: {p.tp_size} does not split {m.num_attention_heads} attention heads")
        if m.num_local_experts % p.ep_size:
            raise ProfileError(f"{where}: ep_size: {p.ep_size} does not split {m.num_local_experts} experts")
        if p.context_length > m.max_position_embeddings:
            raise ProfileError(
                f"{where}: context_length: {p.context_length} exceeds the model's {m.max_position_embeddings}"
            )
        if plan.kv_pool_per_gpu <= 0:
            raise ProfileError(
                f"{where}: mem_fraction_static: {_gb(plan.weights_per_gpu)} GB of weights per GPU do not fit in "
                f"{p.mem_fraction_static:g} x {_gb(plan.gpu_bytes)} GB = {_gb(plan.static_bytes)} GB"
            )
        if plan.max_total_tokens < p.context_length:
            raise ProfileError(
                f"{where}: context_length: the KV pool holds {plan.max_total_tokens} tokens, "
                f"fewer than one request of {p.context_length}"
            )

    def memory_summary(self) -> str:
        """The memory arithmetic in words, as docs/deploy.md prints it."""
        m, p, plan = self.model, self.profile, self.memory()
        dtype = (
            "fp8 weights (online quantization; embeddings, lm_head, norms stay bf16)" if p.dtype == "fp8" else "bf16"
        )
        lines = [
            f"{p.name}: {m.path} on {p.gpu_count} x {self.gpu.product} ({_gb(plan.gpu_bytes)} GB each), "
            f"tp {p.tp_size}, ep {p.ep_size}, dp {p.dp_size}",
            f"  parameters     {plan.parameters / 1e9:.1f}B ({plan.active_parameters / 1e9:.1f}B active per token); "
            f"{_gb(plan.weights_bytes_bf16)} GB in bf16",
            f"  weights        {_gb(plan.weights_bytes)} GB in {dtype}; {_gb(plan.weights_per_gpu)} GB per GPU",
            f"  static pool    {p.mem_fraction_static:g} x {_gb(plan.gpu_bytes)} GB = {_gb(plan.static_bytes)} GB "
            f"per GPU -> KV pool {_gb(plan.kv_pool_per_gpu)} GB per GPU",
            f"  KV per token   {plan.kv_bytes_per_token_model // 1024} KiB for the model "
            f"({plan.kv_bytes_per_token // 1024} KiB on each GPU), KV cache {p.kv_cache_dtype}",
            f"  KV capacity    {plan.max_total_tokens:,} tokens = {plan.full_context_requests} requests "
            f"of the full {p.context_length:,}-token context",
            f"  left over      {_gb(plan.gpu_bytes - plan.static_bytes)} GB per GPU for activations and CUDA graphs",
        ]
        return "\n".join(lines)


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f}"


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"{path}: cannot read: {exc}") from None


def _errors(path: Path, exc: ValidationError) -> ProfileError:
    parts = [f"{path}: {'.'.join(str(x) for x in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()]
    return ProfileError("\n".join(parts))


@cache
def load_hardware(directory: Path = PROFILES_DIR) -> Hardware:
    path = directory / HARDWARE_FILE
    try:
        return Hardware.model_validate(_load_yaml(path))
    except ValidationError as exc:
        raise _errors(path, exc) from None


def load_profile_file(path: Path, hardware: Hardware | None = None) -> ResolvedProfile:
    """Load, resolve and check one profile file."""
    hw = hardware or load_hardware(path.parent)
    try:
        profile = Profile.model_validate(_load_yaml(path))
    except ValidationError as exc:
        raise _errors(path, exc) from None
    if profile.name != path.stem:
        raise ProfileError(f"{path}: name: '{profile.name}' must match the file name '{path.stem}'")
    if profile.model not in hw.models:
        raise ProfileError(f"{path}: model: '{profile.model}' is not in {HARDWARE_FILE} ({', '.join(hw.models)})")
    if profile.gpu not in hw.gpus:
        raise ProfileError(f"{path}: gpu: '{profile.gpu}' is not in {HARDWARE_FILE} ({', '.join(hw.gpus)})")
    resolved = ResolvedProfile(profile, hw.models[profile.model], hw.gpus[profile.gpu], path)
    resolved.check()
    return resolved


def profile_names(directory: Path = PROFILES_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml") if p.name != HARDWARE_FILE)


def load_profile(name: str, directory: Path = PROFILES_DIR) -> ResolvedProfile:
    """The shipped profile `name` (a file name without .yaml)."""
    path = directory / f"{name}.yaml"
    if name == Path(HARDWARE_FILE).stem or not path.is_file():
        raise ProfileError(f"no launch profile '{name}'; profiles: {', '.join(profile_names(directory))}")
    return load_profile_file(path)


def load_all(directory: Path = PROFILES_DIR) -> list[ResolvedProfile]:
    return [load_profile_file(directory / f"{n}.yaml") for n in profile_names(directory)]
