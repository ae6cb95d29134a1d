"""What every tool reader shares: it owns a loaded Program and detaches it."""


class LoadedTool:
    program = None   # a pytools.loader.Program, set by the subclass's __init__

    def close(self) -> None:
        if self.program is not None:
            self.program.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
