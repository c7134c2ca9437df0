import sys


def run() -> int:
    """The ``videoinv`` command: first under jemalloc where it is installed (see
    pipeline.allocator; the process starts again with it), then the CLI."""
    from .pipeline.allocator import relaunch_with_jemalloc

    relaunch_with_jemalloc()
    from .cli import main

    return main()


if __name__ == "__main__":
    sys.exit(run())
