"""The drifting stream the daemon tests produce: six hourly windows, drift from the fourth."""

HOUR = 3_600_000
START = 1_795_046_400_000  # 2026-11-19T00:00:00Z, in the past for the live daemon
WINDOWS = 6
