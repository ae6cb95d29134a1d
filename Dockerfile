# bpf-exporter image: Debian 12 with BCC from Debian. It runs scripts/setup
# --image, so it installs what a host install does (python3-bpfcc,
# python3-venv, the venv), with one copy of the generic kernel headers
# unpacked, not installed (no compiler toolchain), as BCC's fallback.
# Build: docker build -t bpf-pytools:0.1.0 .
#        (or scripts/build-image, with podman, where no registry is reachable)
# Run:   as deploy/kubernetes/bpf-exporter.yaml says (CAP_BPF, CAP_PERFMON,
#        CAP_DAC_READ_SEARCH; the host's tracefs, cgroup2 tree, /lib/modules
#        and /usr/src mounted, the last three read-only under /host).
FROM debian:12-slim
COPY . /src/bpf-pytools
RUN /src/bpf-pytools/scripts/setup --image \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
EXPOSE 19435
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/bpf-pytools/venv/bin/bpf-exporter"]
CMD ["--listen", ":19435"]
