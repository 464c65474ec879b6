# synthrelease: CPU image. Its working folder /data is a VOLUME: mount a host folder there
# for your data, keys, bundles and the privacy ledger (/data/ledger.sqlite3), which must
# outlive the container (a ledger in an unmounted /data is refused).
#   docker build -t synthrelease .
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/work:/data" synthrelease demo --out /data/demo
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/work:/data" synthrelease release cohort.csv \
#       --metadata cohort.yaml --policy /app/policies/default.yaml --epsilon 1 \
#       --signing-key keys/signing_key.pem --out bundle
# The process runs under tini (PID 1), so `docker stop` (SIGTERM) reaches synthrelease,
# which cleans up, marks its ledger entry and writes its internal report (exit 143).
# torch is pinned by constraints.txt. PyPI's Linux torch wheel bundles CUDA libraries;
# to get the smaller CPU-only build, pass your CPU wheel index (or a local mirror):
#   docker build --build-arg PIP_EXTRA_INDEX_URL=<cpu-wheel-index> -t synthrelease .
FROM python:3.11-slim

ARG PIP_EXTRA_INDEX_URL=""
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GX_ANALYTICS_ENABLED=false \
    SYNTHRELEASE_LEDGER=/data/ledger.sqlite3 SYNTHRELEASE_VOLUME=/data HOME=/tmp
WORKDIR /app
COPY constraints.txt pyproject.toml README.md ./
COPY synthrelease ./synthrelease
COPY policies ./policies
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/* \
    && PIP_EXTRA_INDEX_URL="${PIP_EXTRA_INDEX_URL}" pip install --no-cache-dir -c constraints.txt . \
    && pip install --no-cache-dir --no-deps -c constraints.txt anonymeter \
    && useradd --create-home steward && mkdir -p /data && chown steward /data
USER steward
VOLUME /data
WORKDIR /data
ENTRYPOINT ["/usr/bin/tini", "--", "synthrelease"]
CMD ["--help"]
