"""What every tool's reader (<Name>Reader) shares: it owns a loaded Program
and detaches it. The tool itself is its spec (<Name>Tool, pytools.tool)."""


class Reader:
    program = None   # a pytools.loader.Program, set by the subclass's __init__

    def close(self) -> None:
        if self.program is not None:
            self.program.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
