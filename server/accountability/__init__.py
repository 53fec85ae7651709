"""Accountability records and the periodic review (定期点评): late, missing and unanswered, per site and period."""

from server.accountability.install import install

__all__ = ["install"]
