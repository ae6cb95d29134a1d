"""bpf-pytools: eBPF tracing tools on BCC."""


def __getattr__(name: str):
    # The version is written once, in pyproject.toml (pytools.version).
    if name == "__version__":
        # importing the package imports nothing else.
        from .version import version
        return version()
    raise AttributeError(f"module 'pytools' has no attribute {name!r}")
