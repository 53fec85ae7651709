"""The duty platform's fixtures: the whole server on a manual clock at 16:50 in Jiangzhou."""

from tests.server.duty.conftest import duty, make_duty

__all__ = ["duty", "make_duty"]
