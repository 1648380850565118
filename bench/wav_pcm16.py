"""The samples of a 16-bit WAV file with numpy alone (the GPU machine has no soundfile): the
benchmarks' and the Python GPU check's reader of `melpipe generate`'s clips."""

import numpy as np


def pcm16(path):
    """The 16-bit samples of the WAV file at `path` (its data chunk, found by walking the RIFF
    chunks); ValueError when it has none."""
    buf = open(path, "rb").read()
    pos = 12
    while pos + 8 <= len(buf):
        cid, size = buf[pos:pos + 4], int.from_bytes(buf[pos + 4:pos + 8], "little")
        if cid == b"data":
            return np.frombuffer(buf, "<i2", count=min(size, len(buf) - pos - 8) // 2, offset=pos + 8)
        pos += 8 + size + (size & 1)
    raise ValueError(f"{path}: no data chunk")
