"""Search over every record (查得到), with filters, Chinese text handled, permissions respected."""

from server.search.install import install

__all__ = ["install"]
