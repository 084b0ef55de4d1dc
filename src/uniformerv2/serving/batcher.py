"""Dynamic batching: the test views of concurrent requests share the model's forward passes; and
:class:`BatchedClassifier`, a classifier whose forward passes go through the batcher.

One model thread owns the network. Callers (any thread) :meth:`DynamicBatcher.submit` a video's uint8 views and
get a :class:`concurrent.futures.Future` of the network's per-view outputs (float32, on the CPU). The model thread
takes the oldest waiting job, then waits at most ``max_wait_ms`` for more views of the same kind until a batch
holds ``max_batch_views``; a job larger than that is split over several batches, and a batch may end with part of
a job. Every view goes through the network on its own row of a batch, so a video's outputs are the ones the
unbatched path (:meth:`~uniformerv2.inference.VideoClassifier.scores_of_views`) computes, up to the float rounding
of a different batch size.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data import normalize
from ..inference import probabilities, top_classes
from ..precision import autocast
from ..protocol import Protocol

__all__ = ["BatchStats", "DynamicBatcher", "Job", "BatchedClassifier"]


def _settle(future: Future, *, result: object = None, error: BaseException | None = None) -> None:
    """Give ``future`` its result or error unless its caller cancelled it meanwhile."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:  # cancelled (or settled) by the caller since: nobody is waiting
        pass


@dataclass
class Job:
    """One video's views waiting for (or going through) the network, and where its outputs go."""

    views: torch.Tensor
    kind: str
    future: Future
    size: int = 0  # views in all (set from ``views``)
    enqueued: float = field(default_factory=time.perf_counter)
    taken: int = 0  # views handed to a batch so far
    parts: list[torch.Tensor] = field(default_factory=list)
    started: float | None = None  # when its first batch started
    finished: float | None = None

    def __post_init__(self) -> None:
        """Remember the view count (the views are dropped once scored)."""
        self.size = int(self.views.shape[0])

    @property
    def queue_s(self) -> float:
        """Seconds from submission to its first batch."""
        return (self.started or self.enqueued) - self.enqueued

    @property
    def model_s(self) -> float:
        """Seconds from its first batch to its last one's end (other jobs' views included)."""
        return (self.finished or self.enqueued) - (self.started or self.enqueued)


@dataclass(frozen=True)
class BatchStats:
    """What one forward pass did: views, how many jobs they came from, and its duration."""

    views: int
    jobs: int
    seconds: float


class DynamicBatcher:
    """Runs the network on one thread over batches gathered from every caller's views.

    ``forwards`` maps a job kind (e.g. ``"logits"``, ``"pooled"``) to a callable ``f(normalised views) -> outputs``;
    views of different kinds never share a batch. ``on_batch`` is called (on the model thread) after every forward
    pass, for metrics.
    """

    def __init__(
        self,
        forwards: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        max_batch_views: int = 24,
        max_wait_ms: float = 10.0,
        on_batch: Callable[[BatchStats], None] | None = None,
    ) -> None:
        if max_batch_views < 1:
            raise ValueError(f"max_batch_views must be at least 1, got {max_batch_views}")
        self.forwards = dict(forwards)
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_batch_views = max_batch_views
        self.max_wait_s = max(0.0, max_wait_ms) / 1000
        self.on_batch = on_batch
        self._queue: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._incoming = 0  # requests being decoded: views that will arrive soon
        self._closed = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------- callers

    def start(self) -> DynamicBatcher:
        """Start the model thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="uniformerv2-model", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop the model thread after the batch in progress; jobs still waiting fail."""
        with self._cond:
            self._closed = True
            waiting = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for job in waiting:
            _settle(job.future, error=RuntimeError("the server is shutting down"))
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, views: torch.Tensor, kind: str = "logits") -> Future:
        """A future of the network's outputs for ``views`` (uint8 [V, 3, T, S, S]): float32 [V, ...] on the CPU.

        The future carries the :class:`Job` as ``future.job`` (its queue and model times)."""
        if kind not in self.forwards:
            raise ValueError(f"unknown job kind {kind!r}; choose one of {', '.join(self.forwards)}")
        if views.ndim != 5 or views.shape[0] == 0:
            raise ValueError(f"expected views [V, 3, T, S, S] with V >= 1, got {list(views.shape)}")
        future: Future = Future()
        job = Job(views=views, kind=kind, future=future)
        future.job = job  # type: ignore[attr-defined]
        with self._cond:
            if self._closed:
                raise RuntimeError("the server is shutting down")
            self._queue.append(job)
            self._cond.notify_all()
        return future

    @contextlib.contextmanager
    def incoming(self) -> Iterator[None]:
        """Marks a request whose views are being decoded: while any is, a batch that is not full waits for them
        (at most ``max_wait_ms``); when none is, it starts at once, since nothing else is coming."""
        with self._cond:
            self._incoming += 1
        try:
            yield
        finally:
            with self._cond:
                self._incoming -= 1
                self._cond.notify_all()

    @property
    def queued_views(self) -> int:
        """Views submitted and not yet handed to a batch."""
        with self._cond:
            return sum(job.size - job.taken for job in self._queue)

    # ------------------------------------------------------------------------------------------ the thread

    def _waiting(self, kind: str) -> int:
        """Views of ``kind`` waiting for a batch (hold the lock)."""
        return sum(job.size - job.taken for job in self._queue if job.kind == kind)

    def _next_batch(self) -> tuple[str, list[tuple[Job, int, int]]] | None:
        """The next batch as (kind, [(job, first view, end view)]), or None once closed."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            for job in [j for j in self._queue if j.future.done()]:  # cancelled by its caller (a client gone)
                self._queue.remove(job)
            if not self._queue:
                return "", []
            kind = self._queue[0].kind
            deadline = time.perf_counter() + self.max_wait_s
            while self._waiting(kind) < self.max_batch_views and self._incoming and not self._closed:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._closed:
                return None
            room, slices = self.max_batch_views, []
            for job in list(self._queue):
                if room == 0:
                    break
                if job.kind != kind:
                    continue
                take = min(room, job.size - job.taken)
                slices.append((job, job.taken, job.taken + take))
                job.taken += take
                room -= take
                if job.taken == job.size:
                    self._queue.remove(job)
            return kind, slices

    @torch.inference_mode()
    def _forward(self, kind: str, views: torch.Tensor) -> torch.Tensor:
        # uint8 to the device, then normalised there: a quarter of the bytes to move, and the same float32
        # arithmetic (a subtraction and a division, rounded alike on every device) as normalising first
        """One forward pass over uint8 views: normalised, under the autocast dtype, float32 on the CPU out."""
        with autocast(self.device, self.dtype):
            out = self.forwards[kind](normalize(views.to(self.device)))
        return out.float().cpu()

    def _run(self) -> None:
        """The model thread: batch, forward, hand each job its rows, until closed."""
        while True:
            nxt = self._next_batch()
            if nxt is None:
                return
            kind, slices = nxt
            live = [(job, a, b) for job, a, b in slices if not job.future.done()]  # a failed job costs nothing more
            if not live:
                continue
            start = time.perf_counter()
            for job, _, _ in live:
                if job.started is None:
                    job.started = start
            try:
                batch = (
                    torch.cat([job.views[a:b] for job, a, b in live])
                    if len(live) > 1
                    else live[0][0].views[live[0][1] : live[0][2]]
                )
                out = self._forward(kind, batch)
            except Exception as e:  # noqa: BLE001 - the callers get the error; the thread goes on
                for job, _, _ in live:
                    _settle(job.future, error=e)
                with self._cond:  # the rest of a failed job is not worth computing
                    for job, _, _ in live:
                        if job in self._queue:
                            self._queue.remove(job)
                continue
            end = time.perf_counter()
            row = 0
            for job, a, b in live:
                job.parts.append(out[row : row + b - a])
                row += b - a
                if b == job.size:
                    job.finished = end
                    _settle(job.future, result=torch.cat(job.parts) if len(job.parts) > 1 else job.parts[0])
                    job.views = job.views[:0]  # the uint8 views are no longer needed
            if self.on_batch is not None:
                try:
                    self.on_batch(BatchStats(views=int(batch.shape[0]), jobs=len(live), seconds=end - start))
                except Exception:  # noqa: BLE001 - metrics never stop the model
                    pass


class BatchedClassifier:
    """A :class:`~uniformerv2.inference.VideoClassifier` whose forward passes go through a :class:`DynamicBatcher`:
    what :func:`~uniformerv2.timeline.scan` and :class:`~uniformerv2.live.LiveRecognizer` need (``protocol``,
    ``class_names``, ``backend``, ``scores_of_views``, ``scores_of_videos``, ``top_k``), safe to call from any
    thread, and never a second forward on the model beside the batcher's.

    ``protocol``, ``rows`` and ``class_names``: one request's views and classes (the head rows it scores, and their
    names; default: the classifier's). ``record``: keep every job's future in ``futures`` (a request's timing).
    """

    def __init__(
        self,
        clf: Any,
        batcher: DynamicBatcher,
        *,
        protocol: Protocol | None = None,
        rows: Sequence[int] | None = None,
        class_names: Sequence[str] | None = None,
        record: bool = False,
        timeout: float = 120.0,
    ) -> None:
        self.clf = clf
        self.batcher = batcher
        self.protocol = protocol or clf.protocol
        self.rows = None if rows is None else list(rows)
        self.class_names = list(clf.class_names if class_names is None else class_names)
        self.backend = clf.backend
        self.futures: list[Future] | None = [] if record else None
        self.timeout = timeout

    def submit(self, views: torch.Tensor, kind: str = "logits") -> Future:
        """:meth:`DynamicBatcher.submit`, recorded."""
        future = self.batcher.submit(views, kind)
        if self.futures is not None:
            self.futures.append(future)
        return future

    def scores_of_videos(self, view_sets: Sequence[torch.Tensor]) -> torch.Tensor:
        """The probabilities (:func:`~uniformerv2.inference.probabilities`) of each set of views, from the batcher:
        [len(view_sets), classes]."""
        futures = [self.submit(views) for views in view_sets]
        try:
            logits = [future.result(self.timeout) for future in futures]
        finally:
            for future in futures:  # an error or a timeout: the batcher need not score the rest
                future.cancel()
        return torch.stack([probabilities(x, self.rows) for x in logits])

    def scores_of_views(self, views: torch.Tensor) -> torch.Tensor:
        """Softmax per view, mean over views (as ``VideoClassifier.scores_of_views``), from the batcher."""
        return self.scores_of_videos([views])[0]

    def top_k(self, scores: torch.Tensor, top_k: int = 5) -> list[tuple[str, float]]:
        return top_classes(scores, self.class_names, top_k)
