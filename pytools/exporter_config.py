"""bpf-exporter's command line: its defaults and the parsers of its option
values (each raises ValueError, which the CLI turns into a usage error). Light
enough for the CLI to import at start-up (pytools.exporter pulls in
prometheus_client: ~0.1 s)."""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

from .tools import TOOLS, by_name

# Prometheus' list of exporter ports (9100-9999) is full and ebpf_exporter
# has 9435: 19435 is outside that range and outside Linux's ephemeral ports.
DEFAULT_PORT = 19435
DEFAULT_MAX_SERIES = 1000
# Seconds a gone pod's series (and map entries) stay unchanged before they are dropped.
DEFAULT_GONE_AFTER = 90.0


def parse_listen(text: str) -> Tuple[str, int]:
    """'ADDR:PORT', ':PORT' (all addresses), '[v6addr]:PORT' or 'PORT'."""
    if text.startswith("[") and text.endswith("]"):
        raise ValueError(f"{text!r}: the port is missing, e.g. {text}:{DEFAULT_PORT}")
    host, sep, port_text = text.rpartition(":")
    if sep and not port_text:
        raise ValueError(f"{text!r}: the port is missing, e.g. {text}{DEFAULT_PORT}")
    if not sep:
        host, port_text = "", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:{DEFAULT_PORT}")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{text!r}: the port must be a number") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{text!r}: the port must be in 1-65535")
    return host, port


def collector_names() -> List[str]:
    return [tool.name for tool in TOOLS]


def parse_collectors(text: str) -> List[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in collector_names()]
    if unknown:
        raise ValueError(f"unknown collector {', '.join(unknown)}; "
                         f"choose from {', '.join(collector_names())}")
    if not names:
        raise ValueError("no collector chosen")
    return list(dict.fromkeys(names))


def parse_probe_modes(values: Sequence[str]) -> Dict[str, str]:
    """--probe COLLECTOR=MODE options (force a collector's probe mode)."""
    modes = {}
    for value in values:
        name, sep, mode = value.partition("=")
        if not sep or name not in collector_names():
            raise ValueError(f"{value!r}: expected COLLECTOR=MODE with COLLECTOR one of "
                             f"{', '.join(collector_names())}")
        offered = ["auto"] + by_name(name).modes()
        if mode not in offered:
            raise ValueError(f"{value!r}: expected COLLECTOR=MODE with MODE one of "
                             f"{', '.join(offered)} for {name}")
        modes[name] = mode
    return modes
