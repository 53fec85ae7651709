"""Interop with the encoders and players operators use: FFmpeg, PyAV, GStreamer, Chromium."""
