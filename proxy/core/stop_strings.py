"""Stop strings on the final answer: matched over new text only, held back while they may start.

A client's `stop` strings end the answer at their first occurrence (never inside reasoning),
and text that could be the start of one is held back until it cannot. Matched naively, every
token re-searched the whole answer and re-probed every suffix of every stop string: a review
measured 30 s of event-loop time for 4 x 1 MB stop strings over 4,000 tokens. Here each stop
string is a KMP automaton advanced over new characters only (`StopMatcher`), and the unsent
text is kept in pieces (`FinalText`), so a token costs O(its length x the number of stops).
"""

from __future__ import annotations

from collections import deque


class StopMatcher:
    """Knuth-Morris-Pratt search for one stop string, fed the text piece by piece.

    Its state after some text is the length of the longest suffix of that text that is a
    proper prefix of the stop string: how much of it may be starting. Each character costs
    O(1) amortised, whatever the stop string's and the text's lengths; the failure table is
    built only as far as the text has matched (a 1 MB stop string costs nothing up front).
    """

    __slots__ = ("stop", "_fail")

    def __init__(self, stop: str) -> None:
        self.stop = stop
        # _fail[i]: length of the longest proper prefix of stop[: i + 1] that is also its suffix.
        self._fail = [0]

    def advance(self, state: int, text: str) -> tuple[int, int]:
        """(state after `text`, offset in `text` just past the first complete match or -1)."""
        stop, fail, size = self.stop, self._fail, len(self.stop)
        first = stop[0]
        match = -1
        i, n = 0, len(text)
        while i < n:
            if state == 0:
                i = text.find(first, i)  # nothing matched: skip to a possible start in C
                if i == -1:
                    break
                state = 1
            else:
                char = text[i]
                while state and stop[state] != char:
                    state = fail[state - 1]
                if stop[state] == char:
                    state += 1
            i += 1
            if state > len(fail):
                self._grow(state)
            if state == size:
                if match == -1:
                    match = i
                state = fail[size - 1]
        return state, match

    def _grow(self, length: int) -> None:
        """Extend the failure table to `length` entries (amortised O(1) per entry)."""
        stop, fail = self.stop, self._fail
        for i in range(len(fail), length):
            k = fail[i - 1]
            while k and stop[i] != stop[k]:
                k = fail[k - 1]
            if stop[i] == stop[k]:
                k += 1
            fail.append(k)


class FinalText:
    """One message's final text on its way out: cut at the first stop string, and held back
    while its end may start one. Each piece of text is searched once and copied once more when
    it is sent, so a token costs time in its own text and in the text it frees, never in the
    answer's length or in the stop strings' lengths (held text is kept in pieces, not joined)."""

    def __init__(self, stops: tuple[StopMatcher, ...]) -> None:
        self._stops = stops
        self.matched: str | None = None  # the stop string that ended the text, once one did
        self._states = [0] * len(stops)
        self._new: list[str] = []  # added since the last release: no matcher has seen it
        self._unsent: deque[str] = deque()  # seen, not sent: its first `_skip` chars are sent
        self._skip = 0
        self._unsent_length = 0

    def add(self, text: str) -> None:
        self._new.append(text)

    def release(self, hold: bool) -> tuple[str, bool]:
        """(text to send now, whether a stop string matched: the text is then over).

        `hold`: keep back the longest end of the text that is a proper prefix of a stop
        string. A match may begin in text already sent (held text goes out when another
        message starts); then nothing is sent.
        """
        new = "".join(self._new)
        self._new.clear()
        if not self._stops:  # nothing to search or hold back (nothing was ever held)
            return new, False
        if new:
            self._unsent.append(new)
            self._unsent_length += len(new)
        if not self._unsent_length:
            return "", False
        seen = self._unsent_length - len(new)
        cut: int | None = None  # offset in the unsent text where the earliest match begins
        for index, stop in enumerate(self._stops):
            self._states[index], end = stop.advance(self._states[index], new)
            if end != -1:
                at = seen + end - len(stop.stop)
                if cut is None or at < cut:
                    cut, self.matched = at, stop.stop
        if cut is not None:
            text = self._take(max(cut, 0))
            self._unsent.clear()
            self._skip = self._unsent_length = 0
            return text, True
        keep = max(self._states) if hold and self._stops else 0
        return self._take(max(0, self._unsent_length - keep)), False  # it may reach sent text

    def _take(self, count: int) -> str:
        """Remove and return the first `count` unsent characters."""
        pieces = []
        self._unsent_length -= count
        while count:
            piece, skip = self._unsent[0], self._skip
            if len(piece) - skip > count:
                pieces.append(piece[skip : skip + count])
                self._skip += count
                break
            pieces.append(piece[skip:] if skip else piece)
            count -= len(piece) - skip
            self._unsent.popleft()
            self._skip = 0
        return "".join(pieces)
