"""Progress of a transcription or labelling call, counted in seconds of media.

One implementation for the two speech engines and the video labeler:

* :class:`MediaProgress` adds up the seconds of media whose results are ready and reports
  them to a callback ``progress(seconds_done, seconds_total)``, the ``progress=`` argument of
  ``transcribe``/``transcribe_iter`` and ``label``/``label_iter``;
* :func:`audio_seconds` and :func:`video_seconds` give a file's length from its header alone
  (0 when it cannot be read), which is what the total is made of;
* :class:`ProgressBar` is the callback the CLI passes: a tqdm bar on stderr.

The callback is called once with ``(0, total)`` when the call starts, then each time more
media is done: when a file's result is ready (with that file's whole length, whether it
succeeded or failed), and inside a long recording as each block of it is read and decoded
(``transcribe_long``) or inside a video as each batch of windows is scored. ``seconds_done``
never goes down and ends at ``seconds_total``, which does not change during a call; a file
whose length cannot be read adds 0 to both, and a file that turns out longer than its header
said is counted at its header's length. An exception the callback raises is logged once and
the callback is dropped: a progress display never stops a transcription.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from pipeline.limits import current_limits

log = logging.getLogger(__name__)

#: ``progress(seconds_done, seconds_total)``: both floats, in seconds of media.
ProgressCallback = Callable[[float, float], None]


def _bounded(seconds: float) -> float:
    """A header's length as the total counts it: 0 if not a finite positive number, and at
    most the run's ``max_audio_s`` (no input is read past it; a corrupt header may claim years)."""
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        return 0.0
    if not math.isfinite(seconds) or seconds <= 0:
        return 0.0
    return min(seconds, current_limits().max_audio_s)


def audio_seconds(path: str | Path) -> float:
    """Seconds of audio in a file by its header (soundfile, else ffprobe); 0.0 when it cannot be
    read (missing, not a regular file, no audio, unknown format). Never decodes the samples."""
    # lazy: data_prep.audio pulls in soundfile and numpy; seqrec --help reaches this module
    from data_prep.audio import audio_info

    try:
        return _bounded(audio_info(path).duration)
    except Exception:  # any unreadable header counts 0; reading it reports why
        return 0.0


def video_seconds(path: str | Path) -> float:
    """Seconds of video in a file by its container's frame count and frame rate; 0.0 when they
    cannot be read. Decodes no frame."""
    # lazy: data_prep.video_io pulls in cv2 and numpy; seqrec --help reaches this module
    from data_prep.video_io import header_duration

    try:
        return _bounded(header_duration(path) or 0.0)
    except Exception:  # any unreadable header counts 0; decoding it reports why
        return 0.0


class MediaProgress:
    """The seconds of media done in one call over its inputs, in input order.

    Args:
        callback: ``progress(seconds_done, seconds_total)``, or None (then nothing is counted
            and every method is a no-op).
        durations: Seconds of each input (0 for one of unknown length), in the order in which
            their results are made.
    """

    def __init__(self, callback: ProgressCallback | None, durations: Sequence[float]) -> None:
        self.callback = callback
        self.durations = [_bounded(d) for d in durations]
        # Prefix sums, so that the last report is exactly the total (no drift of float adding).
        self._ends = list(itertools.accumulate(self.durations))
        self.total = self._ends[-1] if self._ends else 0.0
        self.done = 0.0
        self._report(0.0, force=True)

    @classmethod
    def of(
        cls,
        callback: ProgressCallback | None,
        items: Sequence[Any],
        seconds: Callable[[Any], float],
    ) -> MediaProgress:
        """Progress over ``items``; ``seconds(item)`` gives each one's length, only when there is
        a callback (reading every header costs time nobody asked for otherwise)."""
        return cls(
            callback, [seconds(x) for x in items] if callback is not None else [0.0] * len(items)
        )

    def _report(self, value: float, force: bool = False) -> None:
        if self.callback is None or (value <= self.done and not force):
            return
        self.done = max(self.done, value)
        try:
            self.callback(self.done, self.total)
        except Exception as exc:  # a display must not fail the files
            log.warning("progress callback failed (%s); no more progress is reported", exc)
            self.callback = None

    def inside(self, index: int) -> Callable[[float], None] | None:
        """A function ``(seconds into input index) -> None`` for progress within that input
        (a long recording, a windowed video), or None without a callback. Seconds past the
        input's counted length are held at it."""
        if self.callback is None:
            return None
        start = self._ends[index - 1] if index else 0.0
        length = self.durations[index]

        def within(seconds: float) -> None:
            if math.isfinite(seconds):
                self._report(start + min(max(seconds, 0.0), length))

        return within

    def file_done(self, index: int) -> None:
        """Input ``index`` is done (a result or an error): everything before it and it count."""
        if self.callback is not None:
            self._report(self._ends[index])


class ProgressBar:
    """A tqdm bar in seconds of media: pass it as ``progress=`` (it is a
    :data:`ProgressCallback`).

    The bar appears at the first call, once the total is known, and shows the seconds done of
    the total, the speed in media seconds per second, and with ``files`` how many inputs are
    done (count them with :meth:`file_done`). Use it as a context manager, or :meth:`close` it.

    Args:
        desc: The bar's label (e.g. ``"transcribe"``).
        files: How many inputs there are (None: no count shown).
        stream: Where to draw it (default: ``sys.stderr`` at the time of the first call).
    """

    FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}, {rate_fmt}]{postfix}"

    def __init__(
        self, desc: str, *, files: int | None = None, stream: IO[str] | None = None
    ) -> None:
        self.desc, self.files, self.stream = desc, files, stream
        self.files_done = 0
        self._bar: Any = None

    def __call__(self, done: float, total: float) -> None:
        if self._bar is None:
            # lazy: tqdm only when a bar is drawn
            from tqdm import tqdm

            stream = self.stream or sys.stderr
            cols, rows = _screen(stream)
            self._bar = tqdm(total=max(0.0, total), desc=self.desc, unit="s", file=stream, bar_format=self.FORMAT,
                             ncols=cols, nrows=rows, leave=True)  # fmt: skip
            self._show_files()
        self._bar.update(max(0.0, done - self._bar.n))

    def file_done(self) -> None:
        """One more input is done (shown at the bar's next refresh)."""
        self.files_done += 1
        self._show_files()

    def _show_files(self) -> None:
        if self._bar is not None and self.files is not None:
            self._bar.set_postfix_str(f"{self.files_done}/{self.files} files", refresh=False)

    def count_files(self, results: Iterator[Any]) -> Iterator[Any]:
        """``results`` unchanged, counting each one as a file done as it passes."""
        for result in results:
            self.file_done()
            yield result

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Clears the bar while the block writes to the terminal (stdout or stderr), then draws
        it again below what was written."""
        if self._bar is None:
            yield
            return
        with self._bar.external_write_mode(file=self._bar.fp):
            yield

    def close(self) -> None:
        """Draws the bar a last time and leaves it on its line."""
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _screen(stream: Any) -> tuple[int, int]:
    """(columns, rows) of the terminal ``stream`` draws on, else of the environment (``COLUMNS``,
    ``LINES``), else 80 x 24. A terminal that reports 0 x 0 (a pseudo-terminal nobody sized) counts
    as none: tqdm, left to ask it, would hide its bar there."""
    try:
        size = os.get_terminal_size(stream.fileno())
        if size.columns > 0 and size.lines > 0:
            return size.columns, size.lines
    except (AttributeError, OSError, ValueError):  # not a terminal, or no file descriptor
        pass
    size = shutil.get_terminal_size()
    return size.columns, size.lines


def wants_bar(choice: bool | None, stream: Any = None) -> bool:
    """Whether to draw a bar: ``choice`` when given (``--progress``/``--no-progress``), else
    only when ``stream`` (default ``sys.stderr``) is a terminal, so never in pipes, log files
    or CI."""
    if choice is not None:
        return choice
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except (OSError, ValueError):  # a closed or odd stream
        return False


__all__ = [
    "MediaProgress",
    "ProgressBar",
    "ProgressCallback",
    "audio_seconds",
    "video_seconds",
    "wants_bar",
]
