"""Who may be authenticated, as the loaded configuration says: its users and its sites.

Authentication asks this on every request and live sessions are checked against it periodically,
so a user or a grant taken out of the configuration ends where it is used, not when a cookie
expires. `load()` takes a new configuration (at start-up, or when the server reloads it).
"""

from __future__ import annotations

from server.config import Config, UserConfig


class Directory:
    """The configured users by name and the configured site ids."""

    def __init__(self, config: Config) -> None:
        self._users: dict[str, UserConfig] = {}
        self._sites: frozenset[str] = frozenset()
        self.load(config)

    def load(self, config: Config) -> None:
        """Take the users and sites of `config` in place of the previous ones."""
        self._users = {user.username: user for user in config.users}
        self._sites = frozenset(site.id for site in config.sites)

    def user(self, username: str) -> UserConfig | None:
        """The configured user of that name, or None."""
        return self._users.get(username)

    def is_user(self, name: str) -> bool:
        """Whether a configured user has this name."""
        return name in self._users

    def has_site(self, site_id: str) -> bool:
        """Whether the site is configured."""
        return site_id in self._sites
