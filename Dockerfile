# bpf-exporter image: Debian 12 with BCC from Debian. It runs scripts/setup
# --image, so it installs exactly what a host install does (python3-bpfcc,
# python3-venv, sudo, the generic kernel headers merged for BCC, the venv).
# Build: docker build -t bpf-pytools:0.1.0 .
# Run:   see deploy/kubernetes/bpf-exporter.yaml (privileged, host tracefs,
#        /lib/modules and /usr/src mounted read-only under /host).
FROM debian:12-slim
COPY . /src/bpf-pytools
RUN /src/bpf-pytools/scripts/setup --image \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
EXPOSE 19435
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/bpf-pytools/venv/bin/bpf-exporter"]
CMD ["--listen", ":19435"]
