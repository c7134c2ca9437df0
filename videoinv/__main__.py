import sys


def run() -> int:
    """The ``videoinv`` command: first under jemalloc where it is installed (see
    pipeline.allocator; the process starts again with it), then the CLI."""
    from .errors import VideoinvError
    from .pipeline.allocator import relaunch_with_jemalloc

    try:
        relaunch_with_jemalloc()
    except VideoinvError as err:
        print(f"videoinv: error: {err}", file=sys.stderr)
        return err.exit_code
    from .cli import main

    return main()


if __name__ == "__main__":
    sys.exit(run())
