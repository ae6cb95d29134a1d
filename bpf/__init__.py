"""BCC C sources of the tools, shipped as package data (pytools.bpf)."""
