"""Dynamic micro-batching: gather concurrent rows up to a size or a wait, group by length, run in worker threads.

The event loop only enqueues and awaits; all model work happens in worker
threads, so the model never blocks request handling. One worker runs one
batch at a time; with `workers=N` up to N batches run at once (onnxruntime
releases the GIL and its sessions take concurrent runs: on a small CPU, N
single-threaded batches keep every core busy, where one batch over N intra-op
threads waits on its slowest thread). A batch is only formed when its
adapters fit the device tier beside the batches already running, so two
batches never fight over slots. The queue is bounded: a full queue is an
`OverloadedError` (HTTP 503 with Retry-After), never unbounded growth.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

from .errors import OverloadedError, ShuttingDownError

log = logging.getLogger(__name__)

# Rows looked at when grouping by length: a few batches' worth keeps padding low
# without letting a short row overtake an old one for long.
_WINDOW_BATCHES = 4


@dataclass(eq=False)
class Job:
    """One input row: its token ids, the adapter key it must run through, and its result."""

    ids: Sequence[int]
    adapter: Any  # anything with a `sha256` (a cache entry)
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


RunBatch = Callable[[list[Job]], list[Any]]
Fits = Callable[[set[str]], bool]


class MicroBatcher:
    """Bounded queue + `workers` threads that run `run_batch` on groups of jobs."""

    def __init__(
        self,
        run_batch: RunBatch,
        max_batch_size: int = 16,
        max_wait_ms: float = 5.0,
        max_queue: int = 512,
        fits: Fits | None = None,
        on_batch: Callable[[int, float], None] | None = None,
        workers: int = 1,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}.")
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self._fits = fits or (lambda shas: True)
        self._on_batch = on_batch
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self.workers = workers
        self._threads: list[threading.Thread] = []
        self._busy: Counter[str] = Counter()  # adapter hashes held by batches now running
        self.batches = 0

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def alive(self) -> bool:
        """Every worker thread is running (a crash in one would leave batches unserved)."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def start(self) -> None:
        if not self._threads:
            self._threads = [
                threading.Thread(target=self._loop, name=f"loradock-batcher-{i}", daemon=True)
                for i in range(self.workers)
            ]
            for thread in self._threads:
                thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what is queued, then stop the workers."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        with self._cond:
            left, self._queue = list(self._queue), deque()
        for job in left:
            if not job.future.done():
                job.future.set_exception(ShuttingDownError("The server is stopping; retry on another instance."))

    def submit(self, jobs: Sequence[Job]) -> None:
        """Queue all of `jobs` or none: a request is never half-accepted."""
        with self._cond:
            if self._stopping:
                raise ShuttingDownError("The server is stopping; retry on another instance.")
            if len(self._queue) + len(jobs) > self.max_queue:
                raise OverloadedError(
                    f"Queue full ({len(self._queue)} rows waiting, limit {self.max_queue}); retry shortly.",
                    retry_after=1,
                )
            self._queue.extend(jobs)
            self._cond.notify()

    # -- worker --------------------------------------------------------------

    def _next_batch(self) -> list[Job] | None:
        """The next batch, marked busy; None once stopping with nothing queued."""
        with self._cond:
            while True:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return None
                deadline = self._queue[0].enqueued + self.max_wait_s
                while len(self._queue) < self.max_batch_size and not self._stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if not self._queue:
                    continue  # another worker took these rows meanwhile
                batch = self._take()
                if batch is not None:
                    self._busy.update({job.adapter.sha256 for job in batch})
                    if self._queue:
                        self._cond.notify()  # rows left over: another idle worker may take them
                    return batch
                self._cond.wait()  # the oldest row's adapter does not fit beside running batches: wait for one

    def _done(self, batch: list[Job]) -> None:
        with self._cond:
            self._busy -= Counter({job.adapter.sha256 for job in batch})  # `-=` drops counts that reach 0
            self.batches += 1
            self._cond.notify_all()

    def _take(self) -> list[Job] | None:
        """The oldest row plus the rows nearest its length, within the adapter-slot limit.

        None when the oldest row's adapter does not fit beside the batches now running (it waits for one
        to finish rather than being overtaken); [] when every queued client went away.
        """
        gone = [j for j in self._queue if j.future.cancelled()]  # clients that went away
        if gone:
            self._queue = deque(j for j in self._queue if not j.future.cancelled())
            if not self._queue:
                return []
        window = [self._queue[i] for i in range(min(len(self._queue), self.max_batch_size * _WINDOW_BATCHES))]
        oldest = window[0]
        by_length = sorted(window, key=lambda j: len(j.ids))
        start = by_length.index(oldest)
        # Walk outwards from the oldest row in length order: neighbours pad least.
        order = [oldest]
        lo, hi = start - 1, start + 1
        while lo >= 0 or hi < len(by_length):
            if hi < len(by_length) and (
                lo < 0 or len(by_length[hi].ids) - len(oldest.ids) <= len(oldest.ids) - len(by_length[lo].ids)
            ):
                order.append(by_length[hi])
                hi += 1
            else:
                order.append(by_length[lo])
                lo -= 1
        busy = set(self._busy)
        if busy and not self._fits(busy | {oldest.adapter.sha256}):
            return None
        batch: list[Job] = []
        shas: set[str] = set()
        for job in order:
            if len(batch) == self.max_batch_size:
                break
            sha = job.adapter.sha256
            if sha in shas or (not batch and not busy) or self._fits(busy | shas | {sha}):
                batch.append(job)
                shas.add(sha)
        chosen = set(batch)
        self._queue = deque(j for j in self._queue if j not in chosen)
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if not batch:
                continue
            started = time.perf_counter()
            try:
                results = self._run_batch(batch)
            except Exception as exc:  # a failing batch fails its requests, never the server
                log.exception("batch of %d failed", len(batch))
                for job in batch:
                    _settle(job.future, exception=exc)
                continue
            finally:
                self._done(batch)
            if self._on_batch is not None:
                self._on_batch(len(batch), time.perf_counter() - started)
            for job, result in zip(batch, results):
                _settle(job.future, result=result)


def _settle(future: Future, result: Any = None, exception: BaseException | None = None) -> None:
    """Set a result unless the client went away and its future was cancelled meanwhile."""
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass
