"""The command channel: directives down, incident reports up, every change an event in the store's log."""

from server.command.install import install

__all__ = ["install"]
