"""The site tree, indexed once: find a site, its children, its subtree, its ancestors.

Every domain asks this one object instead of walking `parent` links of the configuration by hand.
The configuration's loader has already refused unknown parents and cycles, so every walk ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from server.config import Site, UnknownSite


class SiteTree:
    """The configured sites by id and by parent, in configuration order."""

    def __init__(self, sites: Iterable[Site]) -> None:
        self._sites: dict[str, Site] = {}
        self._children: dict[str, list[Site]] = {}
        self._roots: list[Site] = []
        for site in sites:
            self._sites[site.id] = site
        for site in self._sites.values():
            if site.parent is not None and site.parent in self._sites:
                self._children.setdefault(site.parent, []).append(site)
            else:
                self._roots.append(site)

    def __contains__(self, site_id: object) -> bool:
        return site_id in self._sites

    def __iter__(self) -> Iterator[Site]:
        return iter(self._sites.values())

    def __len__(self) -> int:
        return len(self._sites)

    def find(self, site_id: str) -> Site | None:
        """The site with this id, or None."""
        return self._sites.get(site_id)

    def get(self, site_id: str) -> Site:
        """The site with this id; UnknownSite if there is none."""
        found = self._sites.get(site_id)
        if found is None:
            raise UnknownSite(f"unknown site {site_id!r}")
        return found

    def roots(self) -> list[Site]:
        """The sites without a parent, in configuration order."""
        return list(self._roots)

    def children(self, site_id: str) -> list[Site]:
        """The sites whose parent is this site, in configuration order."""
        return list(self._children.get(site_id, ()))

    def parent(self, site_id: str) -> Site | None:
        """The site's parent, or None for a root (or an unknown site)."""
        site = self._sites.get(site_id)
        return None if site is None or site.parent is None else self._sites.get(site.parent)

    def parent_id(self, site_id: str) -> str | None:
        """The id of the site's parent, or None for a root (or an unknown site)."""
        parent = self.parent(site_id)
        return None if parent is None else parent.id

    def subtree(self, site_id: str) -> list[Site]:
        """This site and all its descendants, depth first in configuration order; UnknownSite if unknown."""
        result: list[Site] = []
        seen: set[str] = set()
        stack = [self.get(site_id)]
        while stack:
            current = stack.pop()
            if current.id in seen:  # only a tree the loader did not check can loop
                continue
            seen.add(current.id)
            result.append(current)
            stack.extend(reversed(self._children.get(current.id, ())))
        return result

    def ancestors(self, site_id: str) -> list[Site]:
        """The chain above a site, nearest first: its parent, the parent's parent, up to a root."""
        chain: list[Site] = []
        current = self.parent(site_id)
        while current is not None and current not in chain and current.id != site_id:
            chain.append(current)
            current = self.parent(current.id)
        return chain

    def resolve(self, sites: Iterable[str], subtrees: Iterable[str]) -> tuple[list[str], list[str]]:
        """(the ids named and those under the named subtrees, in order without repeats; the unknown ids)."""
        named, roots = list(sites), list(subtrees)
        unknown = [s for s in [*named, *roots] if s not in self._sites]
        chosen: dict[str, None] = dict.fromkeys(s for s in named if s in self._sites)
        for root in roots:
            if root in self._sites:
                chosen.update(dict.fromkeys(s.id for s in self.subtree(root)))
        return list(chosen), unknown
