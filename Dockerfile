# bpf-exporter image: Debian 12 with BCC from Debian. It runs scripts/setup
# --image, so it installs what a host install does (python3-bpfcc,
# python3-venv, the venv), with one copy of the generic kernel headers
# unpacked, not installed (no compiler toolchain), as BCC's fallback.
# Build: scripts/build-image [TAG] (podman; tags it with pyproject.toml's
#        version and sets the labels below), or
#        docker build --build-arg VERSION=X.Y.Z --build-arg REVISION=$(git rev-parse HEAD) \
#            -t bpf-pytools:X.Y.Z .
# Run:   as deploy/kubernetes/base/bpf-exporter.yaml says (CAP_BPF, CAP_PERFMON,
#        CAP_DAC_READ_SEARCH; the host's tracefs, cgroup2 tree, /lib/modules
#        and /usr/src mounted, the last three read-only under /host).
FROM debian:12-slim
ARG VERSION=unknown
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="bpf-pytools" \
      org.opencontainers.image.description="bpf-exporter and the bpf-pytools CLIs (eBPF on BCC)" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$REVISION" \
      org.opencontainers.image.source="$SOURCE" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY . /src/bpf-pytools
RUN /src/bpf-pytools/scripts/setup --image \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
EXPOSE 19435
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/bpf-pytools/venv/bin/bpf-exporter"]
CMD ["--listen", ":19435"]
