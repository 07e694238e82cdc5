"""SGLang launch profiles: every shipped profile fits its GPUs, the memory arithmetic matches the
models' published sizes, and `mixguard sglang render` prints the exact launch command."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from proxy.cli import main
from sglang_backend.profiles import (
    REQUIRED_FLAGS,
    ProfileError,
    load_all,
    load_hardware,
    load_profile,
    load_profile_file,
)
from sglang_backend.render import shell_command


def _flags(args: list[str]) -> dict[str, str | None]:
    """--flag value pairs of a launch command (None for a flag without a value)."""
    out: dict[str, str | None] = {}
    for i, a in enumerate(args):
        if a.startswith("--"):
            nxt = args[i + 1] if i + 1 < len(args) else None
            out[a] = None if nxt is None or nxt.startswith("--") else nxt
    return out


def _write_profile(tmp_path: Path, **fields: object) -> Path:
    base: dict[str, object] = {
        "name": "p",
        "model": "mixtral-8x7b-instruct",
        "gpu": "h100-80gb",
        "gpu_count": 2,
        "dtype": "bf16",
        "tp_size": 2,
        "mem_fraction_static": 0.85,
        "chunked_prefill_size": 8192,
        "schedule_policy": "lpm",
        "context_length": 32768,
    }
    base.update(fields)
    path = tmp_path / f"{base['name']}.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def test_every_shipped_profile_fits_its_gpus_and_reports_cache_and_metrics():
    profiles = load_all()
    names = {p.name for p in profiles}
    assert {"mixtral-8x7b-h100x2-bf16", "mixtral-8x22b-h100x8-bf16", "mixtral-8x22b-h100x4-fp8"} <= names
    for rp in profiles:
        plan = rp.memory()
        assert plan.weights_per_gpu < plan.static_bytes, rp.name
        assert plan.max_total_tokens >= rp.profile.context_length, rp.name
        args = rp.launch_args()
        for flag in REQUIRED_FLAGS:  # the gateway needs cached_tokens in usage and SGLang's /metrics
            assert flag in args, (rp.name, flag)
        assert _flags(args)["--schedule-policy"] == "lpm"


def test_memory_arithmetic_matches_the_published_model_sizes():
    small = load_profile("mixtral-8x7b-h100x2-bf16").memory()
    assert round(small.parameters / 1e9, 1) == 46.7
    assert round(small.active_parameters / 1e9, 1) == 12.9
    assert round(small.weights_bytes / 1e9, 1) == 93.4  # bf16: 2 bytes a parameter
    assert small.weights_per_gpu == pytest.approx(small.weights_bytes / 2, abs=1)
    assert small.kv_bytes_per_token_model == 128 * 1024  # 2 x 32 layers x 8 KV heads x 128 x 2 bytes

    big = load_profile("mixtral-8x22b-h100x8-bf16").memory()
    assert round(big.parameters / 1e9) == 141
    assert round(big.active_parameters / 1e9) == 39
    assert 280e9 < big.weights_bytes < 283e9  # "about 282 GB in bf16"
    fp8 = load_profile("mixtral-8x22b-h100x4-fp8").memory()
    assert round(fp8.weights_bytes / 1e9) == 141  # linear layers at 1 byte, embeddings and norms stay bf16
    assert fp8.weights_bytes_bf16 == big.weights_bytes
    # tensor parallel 8 over 8 KV heads: one KV head of every layer on each GPU
    assert big.kv_bytes_per_token == big.kv_bytes_per_token_model // 8


def test_launch_command_carries_every_field_of_the_profile():
    rp = load_profile("mixtral-8x22b-h100x8-bf16")
    cmd = rp.command()
    assert cmd[:3] == ["python3", "-m", "sglang.launch_server"]
    f = _flags(cmd[3:])
    assert f["--model-path"] == "mistralai/Mixtral-8x22B-Instruct-v0.1"
    assert f["--tp-size"] == "8" and f["--ep-size"] == "8"
    assert f["--mem-fraction-static"] == "0.85"
    assert f["--chunked-prefill-size"] == "8192"
    assert f["--context-length"] == "65536"
    assert f["--port"] == "30000" and f["--host"] == "0.0.0.0"
    assert "--quantization" not in f

    fp8 = _flags(load_profile("mixtral-8x7b-h100x1-fp8").launch_args())
    assert fp8["--quantization"] == "fp8" and fp8["--tp-size"] == "1" and "--ep-size" not in fp8


def test_shell_command_is_the_launch_command_one_flag_per_line():
    rp = load_profile("mixtral-8x7b-h100x2-bf16")
    text = shell_command(rp)
    assert text.replace(" \\\n  ", " ").split() == rp.command()
    assert "  --enable-metrics" in text.splitlines()[-1]


def test_profile_whose_weights_do_not_fit_is_rejected_naming_file_and_key(tmp_path):
    path = _write_profile(tmp_path, model="mixtral-8x22b-instruct", context_length=65536)  # 282 GB on 2 x 80 GB
    with pytest.raises(ProfileError) as exc:
        load_profile_file(path, load_hardware())
    assert str(path) in str(exc.value) and "mem_fraction_static" in str(exc.value)
    assert "do not fit" in str(exc.value)


def test_profile_whose_kv_pool_cannot_hold_one_full_context_is_rejected(tmp_path):
    # 47 GB of fp8 weights in 0.58 x 85.5 GB leaves ~2.6 GB: ~19,000 tokens, under 32,768
    path = _write_profile(tmp_path, gpu_count=1, tp_size=1, dtype="fp8", mem_fraction_static=0.58)
    with pytest.raises(ProfileError, match=r"context_length: the KV pool holds \d+ tokens"):
        load_profile_file(path, load_hardware())


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"gpu_count": 4}, "gpu_count 4 must equal tp_size x dp_size = 2"),
        ({"ep_size": 3}, "ep_size 3 must divide tp_size 2"),
        ({"model": "llama"}, "model: 'llama' is not in hardware.yaml"),
        ({"gpu": "a100"}, "gpu: 'a100' is not in hardware.yaml"),
        ({"schedule_policy": "fastest"}, "schedule_policy"),
        ({"tensor_parallel": 2}, "tensor_parallel: Extra inputs are not permitted"),
        ({"extra_args": ["--tp-size", "4"]}, "--tp-size is set by a profile field"),
        ({"context_length": 65536}, "exceeds the model's 32768"),
        ({"name": "other"}, "must match the file name"),
    ],
)
def test_invalid_profile_is_rejected_with_the_reason(tmp_path, fields, message):
    path = _write_profile(tmp_path, **fields)
    if path.stem != "p":  # a name that differs from the file: write it under the expected name
        path = path.rename(tmp_path / "p.yaml")
    with pytest.raises(ProfileError) as exc:
        load_profile_file(path, load_hardware())
    assert message in str(exc.value)
    assert str(path) in str(exc.value)


def test_cli_render_prints_the_launch_command(capsys):
    assert main(["sglang", "render", "--profile", "mixtral-8x7b-h100x2-bf16"]) == 0
    out = capsys.readouterr().out
    assert out.replace(" \\\n  ", " ").split() == load_profile("mixtral-8x7b-h100x2-bf16").command()


def test_cli_render_memory_and_list(capsys):
    assert main(["sglang", "render", "--profile", "mixtral-8x22b-h100x4-fp8", "--format", "memory"]) == 0
    out = capsys.readouterr().out
    assert "140.6B" in out and "281.3 GB in bf16" in out and "141.0 GB in fp8" in out
    assert main(["sglang", "render", "--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == [p.name for p in load_all()]


def test_cli_render_unknown_profile_is_one_line_without_traceback(capsys):
    assert main(["sglang", "render", "--profile", "mixtral-9x9b"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mixguard: no launch profile 'mixtral-9x9b'; profiles: ")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_render_k8s_manifests_are_yaml_with_the_profile_args(capsys):
    assert main(["sglang", "render", "--profile", "mixtral-8x7b-h100x1-fp8", "--format", "k8s", "--replicas", "3"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    assert sts["spec"]["replicas"] == 3
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == load_profile("mixtral-8x7b-h100x1-fp8").launch_args()
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
