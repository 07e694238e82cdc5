"""`mixguard sglang render`: a launch profile as the exact SGLang command, as docker compose services
and as Kubernetes manifests.

The SGLang parts of `deploy/docker-compose.yaml` and `deploy/k8s/` are this module's output
(tests/unit/test_deploy_files.py renders them again and compares), so changing a profile and
re-rendering is the only way the deploy files change their SGLang flags.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

import yaml

from .profiles import PORT, ProfileError, ResolvedProfile, load_all, load_profile

#: SGLang's release image matching the version run on the GPU host (0.5.17, CUDA 13 runtime).
SGLANG_IMAGE = "lmsysorg/sglang:v0.5.17-cu130-runtime"
#: Labels the router's Kubernetes service discovery selects workers by.
WORKER_NAME = "sglang-worker"
WORKER_LABELS = {"app.kubernetes.io/name": WORKER_NAME, "app.kubernetes.io/part-of": "mixguard"}
PROFILE_LABEL = "mixguard.io/sglang-profile"
#: The Secret holding the gateway's keys; workers read an optional HF_TOKEN from it.
SECRET_NAME = "mixguard-secrets"
#: SGLang's worker processes talk through shared memory (NCCL, tokenizer <-> scheduler):
#: Docker's default 64 MB /dev/shm is far too small.
SHM_SIZE_GIB = 16
HEALTH = "/health"  # liveness: the HTTP server and scheduler are up
HEALTH_GENERATE = "/health_generate"  # readiness: a one-token generation goes through
HF_HOME = "/models/hf"


def shell_command(rp: ResolvedProfile) -> str:
    """The launch command, one flag (and its value) per line, ready to paste."""
    cmd = rp.command()
    head, args = cmd[:3], cmd[3:]
    lines, i = [shlex.join(head)], 0
    while i < len(args):
        if i + 1 < len(args) and not args[i + 1].startswith("--"):
            lines.append(shlex.join(args[i : i + 2]))
            i += 2
        else:
            lines.append(shlex.quote(args[i]))
            i += 1
    return " \\\n  ".join(lines)


def _storage_gib(rp: ResolvedProfile) -> int:
    """Room for the bf16 checkpoint (fp8 profiles quantize it at load) plus half again for
    the download's temporary files, in steps of 50 GiB."""
    need = rp.memory().weights_bytes_bf16 * 1.5 / 2**30
    return int(-(-need // 50) * 50)


def compose_services(rp: ResolvedProfile, replicas: int = 1, first_gpu: int = 0) -> dict[str, Any]:
    """`sglang-0` ... `sglang-N`: one service per replica, each on its own GPUs (device_ids)."""
    services: dict[str, Any] = {}
    n = rp.profile.gpu_count
    for i in range(replicas):
        gpus = [str(first_gpu + i * n + k) for k in range(n)]
        services[f"sglang-{i}"] = {
            "image": SGLANG_IMAGE,
            "command": rp.command(),
            "environment": {"HF_HOME": HF_HOME, "HF_TOKEN": "${HF_TOKEN:-}"},
            "volumes": ["hf-cache:/models"],
            "shm_size": f"{SHM_SIZE_GIB}gb",
            "deploy": {
                "resources": {
                    "reservations": {"devices": [{"driver": "nvidia", "device_ids": gpus, "capabilities": ["gpu"]}]}
                }
            },
            "healthcheck": {
                "test": [
                    "CMD",
                    "python3",
                    "-c",
                    f"import urllib.request as u; u.urlopen('http://127.0.0.1:{PORT}{HEALTH_GENERATE}', timeout=20)",
                ],
                "interval": "30s",
                "timeout": "30s",
                "retries": 3,
                "start_period": "1800s",  # first start downloads the weights
            },
            "restart": "unless-stopped",
        }
    return services


def k8s_manifests(rp: ResolvedProfile, replicas: int = 2) -> list[dict[str, Any]]:
    """A headless Service and a StatefulSet of `replicas` SGLang servers of this profile."""
    p = rp.profile
    labels = {**WORKER_LABELS, PROFILE_LABEL: p.name}
    gpus = p.gpu_count
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": WORKER_NAME, "labels": dict(WORKER_LABELS)},
        "spec": {
            "clusterIP": "None",  # headless: stable names sglang-worker-N.sglang-worker for each replica
            "selector": dict(WORKER_LABELS),
            "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
        },
    }
    container = {
        "name": "sglang",
        "image": SGLANG_IMAGE,
        "command": rp.command()[:3],
        "args": rp.launch_args(),
        "env": [
            {"name": "HF_HOME", "value": HF_HOME},
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": "HF_TOKEN", "optional": True}},
            },
        ],
        "ports": [{"name": "http", "containerPort": PORT}],
        "resources": {
            "requests": {"cpu": str(4 * gpus), "memory": f"{32 * gpus}Gi", "nvidia.com/gpu": gpus},
            "limits": {"memory": f"{64 * gpus}Gi", "nvidia.com/gpu": gpus},
        },
        # weights load for minutes (after a download on the first start): liveness waits for this
        "startupProbe": {"httpGet": {"path": HEALTH, "port": "http"}, "periodSeconds": 10, "failureThreshold": 360},
        "readinessProbe": {
            "httpGet": {"path": HEALTH_GENERATE, "port": "http"},
            "periodSeconds": 15,
            "timeoutSeconds": 20,
            "failureThreshold": 4,
        },
        "livenessProbe": {
            "httpGet": {"path": HEALTH, "port": "http"},
            "periodSeconds": 20,
            "timeoutSeconds": 5,
            "failureThreshold": 6,
        },
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}, {"name": "models", "mountPath": "/models"}],
    }
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": WORKER_NAME, "labels": labels},
        "spec": {
            "serviceName": WORKER_NAME,
            "replicas": replicas,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": dict(WORKER_LABELS)},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "nodeSelector": {"nvidia.com/gpu.product": rp.gpu.k8s_product_label},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "terminationGracePeriodSeconds": 60,
                    "containers": [container],
                    "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{SHM_SIZE_GIB}Gi"}}],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "models"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": f"{_storage_gib(rp)}Gi"}},
                    },
                }
            ],
        },
    }
    return [service, statefulset]


def _header(rp: ResolvedProfile, fmt: str, replicas: int) -> str:
    return (
        f"# Rendered by `mixguard sglang render --profile {rp.name} --format {fmt} --replicas {replicas}`;\n"
        f"# edit sglang_backend/launch_profiles/{rp.name}.yaml and render again instead of editing this.\n"
    )


class _Dumper(yaml.SafeDumper):
    """Writes a mapping used twice (labels) out twice: manifests with YAML anchors confuse readers."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(docs: list[Any]) -> str:
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def render(rp: ResolvedProfile, fmt: str, replicas: int) -> str:
    if fmt == "command":
        return shell_command(rp) + "\n"
    if fmt == "memory":
        return rp.memory_summary() + "\n"
    if fmt == "compose":
        return _header(rp, fmt, replicas) + dump_yaml([{"services": compose_services(rp, replicas)}])
    if fmt == "k8s":
        return _header(rp, fmt, replicas) + dump_yaml(k8s_manifests(rp, replicas))
    raise ValueError(fmt)


def _cmd_render(args: argparse.Namespace) -> int:
    try:
        if args.list or not args.profile:
            for rp in load_all():
                plan = rp.memory()
                print(
                    f"{rp.name:30} {rp.profile.gpu_count} x {rp.gpu.product}, {rp.profile.dtype}, "
                    f"{plan.weights_bytes / 1e9:.1f} GB of weights, KV cache {plan.max_total_tokens:,} tokens"
                )
            return 0
        replicas = args.replicas if args.replicas is not None else (2 if args.format == "k8s" else 1)
        sys.stdout.write(render(load_profile(args.profile), args.format, replicas))
        return 0
    except ProfileError as exc:
        print(f"mixguard: {exc}", file=sys.stderr)
        return 2


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return n


def add_parser(sub: Any) -> None:
    """`mixguard sglang render`: called by the gateway's CLI (proxy/cli.py)."""
    p = sub.add_parser("sglang", help="SGLang launch profiles")
    psub = p.add_subparsers(dest="sglang_cmd", required=True)
    r = psub.add_parser("render", help="a launch profile as a command, compose services, k8s manifests or memory plan")
    r.add_argument("--profile", help="profile name (sglang_backend/launch_profiles/NAME.yaml)")
    r.add_argument("--format", choices=["command", "memory", "compose", "k8s"], default="command")
    r.add_argument("--replicas", type=_positive, help="SGLang servers (default: 1 for compose, 2 for k8s)")
    r.add_argument("--list", action="store_true", help="list the profiles with their memory figures")
    r.set_defaults(func=_cmd_render)
