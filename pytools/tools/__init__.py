"""One module per tool: its probe plan, its snapshot type, and the reader
that turns BPF maps into that snapshot. Pure helpers live beside the reader
and never import bcc."""
