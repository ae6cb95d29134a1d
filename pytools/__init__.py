"""bpf-pytools: eBPF tracing tools on BCC."""

__version__ = "0.1.0"
