# synthrelease: CPU image.
#   docker build -t synthrelease .
#   docker run --rm -v "$PWD/out:/out" synthrelease demo --out /out/demo
# The process runs under tini (PID 1), so `docker stop` (SIGTERM) reaches synthrelease,
# which cleans up, marks its ledger entry and writes its internal report (exit 143).
# torch is pinned by constraints.txt. PyPI's Linux torch wheel bundles CUDA libraries;
# to get the smaller CPU-only build, pass your CPU wheel index (or a local mirror):
#   docker build --build-arg PIP_EXTRA_INDEX_URL=<cpu-wheel-index> -t synthrelease .
FROM python:3.11-slim

ARG PIP_EXTRA_INDEX_URL=""
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GX_ANALYTICS_ENABLED=false
WORKDIR /app
COPY constraints.txt pyproject.toml README.md ./
COPY synthrelease ./synthrelease
COPY policies ./policies
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/* \
    && PIP_EXTRA_INDEX_URL="${PIP_EXTRA_INDEX_URL}" pip install --no-cache-dir -c constraints.txt . \
    && useradd --create-home steward
USER steward
WORKDIR /home/steward
ENTRYPOINT ["/usr/bin/tini", "--", "synthrelease"]
CMD ["--help"]
