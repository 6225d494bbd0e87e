"""A progress callback that interrupts a long job, as Ctrl-C would, after a number of calls."""

from collections.abc import Callable


def interrupt_after(calls: int) -> Callable[[int], None]:
    seen: list[int] = []

    def progress(n: int) -> None:
        seen.append(n)
        if len(seen) == calls:
            raise KeyboardInterrupt

    return progress
