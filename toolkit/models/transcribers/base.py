"""Where the transcript spliced after the audio vectors comes from."""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np

from toolkit.registry import Registry


class Transcriber(abc.ABC):
    """``transcribe(waveforms, given)`` returns one transcript per clip.

    ``given[i]`` is the text the data or the user supplied for clip ``i`` (or None). A given text
    always wins; transcribers differ in what they do when there is none.
    """

    @abc.abstractmethod
    def transcribe(self, waveforms: Sequence[np.ndarray], given: Sequence[str | None]) -> list[str]:  # pragma: no cover
        ...

    def to(self, device) -> "Transcriber":
        return self


TRANSCRIBERS = Registry("transcriber", base=Transcriber, variable="TRANSCRIBERS",
                        components="toolkit.models.transcribers")
