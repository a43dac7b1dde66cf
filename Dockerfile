# tstream: the server (`tstream serve`) and, with another command, the Voila dashboards
# (`tstream dashboard`). Slim, non-root, health-checked. Build: docker build -t tstream .
#
# Two stages: the build stage installs the package and its dashboards extra into a
# virtualenv; the runtime stage copies only that venv (no compilers, no pip cache).
# libtorrent, psycopg and ffmpeg (imageio-ffmpeg) come as self-contained wheels, so the
# runtime needs no Debian packages beyond python:3.11-slim.
FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/venv/bin/pip install --no-cache-dir ".[dashboards]" \
 && mkdir -p /src/dashboards

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/data \
    TSTREAM_DATA_DIR=/data \
    TSTREAM_HOST=0.0.0.0 \
    TSTREAM_PORT=8080 \
    TSTREAM_BT_LISTEN=0.0.0.0:6881 \
    TSTREAM_LOG_FORMAT=json
# a fixed uid/gid so a bind-mounted data folder can be chowned to it (10001:10001)
RUN groupadd --system --gid 10001 tstream \
 && useradd --system --uid 10001 --gid tstream --home-dir /data --shell /usr/sbin/nologin tstream \
 && mkdir -p /data /app \
 && chown tstream:tstream /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /src/dashboards /app/dashboards
USER tstream
WORKDIR /data
VOLUME ["/data"]
# HTTP, then BitTorrent peers (TCP and uTP/UDP, DHT)
EXPOSE 8080 6881/tcp 6881/udp
# `tstream health` asks /api/health with TSTREAM_API_TOKEN; exit 1 when it does not answer ok
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["tstream", "health", "--timeout", "4"]
# SIGTERM (docker stop) saves every torrent's resume data; give it time (stop_grace_period)
STOPSIGNAL SIGTERM
CMD ["tstream", "serve"]
