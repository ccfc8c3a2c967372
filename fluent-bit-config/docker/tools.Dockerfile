# The compose demo's helpers (docker-compose.yml): the SigV4-verifying receiver
# (tests/helpers/receiver.py, botocore) and tinyproxy, in one small Debian image.
# BASE_IMAGE: any Debian bookworm image; the packages are installed unless it has them already
# (the tests build FROM a root made with mmdebstrap that has them, with --network none).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN set -e; pk="python3 python3-botocore python3-msgpack python3-zstandard tinyproxy-bin"; \
    if ! dpkg-query -W $pk >/dev/null 2>&1; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $pk; \
        rm -rf /var/lib/apt/lists/*; \
    fi
COPY tests/helpers/receiver.py /opt/flb-sigv4/receiver.py
COPY fluent-bit-config/docker/tinyproxy.conf /opt/flb-sigv4/tinyproxy.conf
