"""Video roll-call (视频点名): call sites, each answers on camera, evidence kept, also on a schedule."""

from server.rollcall.install import install

__all__ = ["install"]
