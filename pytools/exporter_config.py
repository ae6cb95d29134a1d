"""bpf-exporter's defaults, in a module light enough for the CLI to import
at start-up (pytools.exporter pulls in prometheus_client: ~0.1 s)."""

# Prometheus' list of exporter ports (9100-9999) is full and ebpf_exporter
# has 9435: 19435 is outside that range and outside Linux's ephemeral ports.
DEFAULT_PORT = 19435
DEFAULT_MAX_SERIES = 1000
