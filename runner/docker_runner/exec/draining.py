"""Shutdown, from the requests' side: work still in flight when the shutdown grace is about to run
out is cut by the runner itself, so that it answers 503 ``shutting_down`` in the error envelope
(with what it produced so far) instead of being cancelled by uvicorn into a bare 500."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Draining:
    """The cancel functions of in-flight work, all called at once by :meth:`cut`."""

    def __init__(self) -> None:
        self.cut_begun = False
        self._cancels: set[Callable[[], None]] = set()

    @contextmanager
    def track(self, cancel: Callable[[], None]) -> Iterator[None]:
        if self.cut_begun:
            cancel()
        self._cancels.add(cancel)
        try:
            yield
        finally:
            self._cancels.discard(cancel)

    def cut(self) -> None:
        self.cut_begun = True
        for cancel in list(self._cancels):
            cancel()
