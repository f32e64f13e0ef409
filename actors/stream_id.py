"""Redis stream entry ids ("<ms>-<seq>") as ordered pairs."""

from __future__ import annotations

from typing import NamedTuple


class StreamId(NamedTuple):
    ms: int
    seq: int

    @classmethod
    def parse(cls, raw: str | bytes) -> StreamId:
        text = raw.decode() if isinstance(raw, bytes) else raw
        ms, _, seq = text.partition("-")
        return cls(int(ms), int(seq or 0))

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"


ORIGIN = StreamId(0, 0)
