"""The statistics dashboard (统计) per period and per site, with charts drawn by matplotlib."""

from server.stats.install import install

__all__ = ["install"]
