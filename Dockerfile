# The Moments image: one image for every role, chosen by the command.
#   docker build -t moments:latest .
#   docker run --rm moments:latest worker      # Faust worker: /metrics /healthz /readyz on 6066
#   docker run --rm moments:latest api         # HTTP API on 6067; /healthz /readyz /metrics also
#                                              # on 6068, uncounted by its connection cap
#   docker run --rm moments:latest simulate --respond
# Settings come from MOMENTS_* variables (streams/settings.py); deploy/compose.yaml and
# deploy/k8s/ set the ones a container needs.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the package build needs (see .dockerignore), so code edits don't bust the layer
# of anything but the install.
COPY pyproject.toml README.md constraints.txt ./
COPY schemas ./schemas
COPY feature_store ./feature_store
COPY agents ./agents
COPY streams ./streams
RUN PIP_CONSTRAINT=constraints.txt pip install . \
    && rm -rf /src/build /src/*.egg-info

# The offer catalogue baked in as a default; Kubernetes mounts its ConfigMap over this directory.
COPY deploy/catalogue/offers.toml /etc/moments/catalogue/offers.toml

RUN groupadd --system --gid 10001 moments \
    && useradd --system --uid 10001 --gid moments --home-dir /home/moments --create-home \
       --shell /usr/sbin/nologin moments \
    && mkdir -p /var/lib/moments \
    && chown moments:moments /var/lib/moments

# In a container the servers must listen on every interface, not the laptop default 127.0.0.1.
ENV MOMENTS_CATALOGUE_PATH=/etc/moments/catalogue/offers.toml \
    MOMENTS_DATA_DIR=/var/lib/moments \
    MOMENTS_WEB_HOST=0.0.0.0 \
    MOMENTS_WEB_PORT=6066 \
    MOMENTS_API_HOST=0.0.0.0 \
    MOMENTS_API_PORT=6067 \
    MOMENTS_API_PROBE_PORT=6068

USER 10001:10001
WORKDIR /home/moments
EXPOSE 6066 6067 6068
ENTRYPOINT ["moments"]
CMD ["worker"]
