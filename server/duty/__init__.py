"""The daily duty report (每日值班报告): every reporting site files by 17:30, "有事报事，无事报平安"."""

from server.duty.install import install

__all__ = ["install"]
