"""Checks of the media settings (``TSTREAM_TRANSCODE_*``, ``TSTREAM_PROBE_TIMEOUT``)."""
from __future__ import annotations

from typing import Any

#: libx264's presets, fastest first
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow")


def media_problems(s: Any) -> list[str]:
    out = []
    if s.transcode_limit < 0:
        out.append("TSTREAM_TRANSCODE_LIMIT must be >= 0 (0 = no ffmpeg at all)")
    if s.transcode_preset not in X264_PRESETS:
        out.append(f"TSTREAM_TRANSCODE_PRESET must be one of {', '.join(X264_PRESETS)}")
    if s.transcode_max_height < 0 or (0 < s.transcode_max_height < 144):
        out.append("TSTREAM_TRANSCODE_MAX_HEIGHT must be 0 (keep) or >= 144 lines")
    if s.probe_timeout <= 0:
        out.append("TSTREAM_PROBE_TIMEOUT must be > 0 seconds")
    return out
