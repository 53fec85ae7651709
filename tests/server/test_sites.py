"""The site tree as one indexed object: find, children, subtree, ancestors, resolve."""

from __future__ import annotations

import pytest

from server.config import DEFAULT_CONFIG_PATH, Site, UnknownSite, load_config
from server.sites import SiteTree


@pytest.fixture
def tree() -> SiteTree:
    return SiteTree(load_config(DEFAULT_CONFIG_PATH, env={}).sites)


def test_find_returns_the_site_or_none_and_get_raises_for_an_unknown_id(tree: SiteTree) -> None:
    found = tree.find("linjiang")
    assert found is not None and found.name_zh == "临江县"
    assert tree.find("atlantis") is None
    assert "linjiang" in tree and "atlantis" not in tree
    with pytest.raises(UnknownSite):
        tree.get("atlantis")


def test_subtree_holds_the_site_and_all_its_descendants_depth_first(tree: SiteTree) -> None:
    below = tree.subtree("linjiang")
    assert below[0].id == "linjiang"
    assert {s.kind for s in below[1:]} >= {"township", "mobile"}
    assert all(s.parent in {x.id for x in below} for s in below[1:])
    assert len(tree.subtree("office")) == len(tree)
    with pytest.raises(UnknownSite):
        tree.subtree("atlantis")


def test_children_are_the_direct_descendants_only_in_configuration_order(tree: SiteTree) -> None:
    children = tree.children("command_centre")
    assert children and all(s.parent == "command_centre" for s in children)
    assert tree.children("police110") == []
    assert [s.id for s in tree.children("linjiang")][:3] == ["linjiang-qingshi", "linjiang-baisha", "linjiang-liuxi"]


def test_ancestors_run_from_the_parent_up_to_the_root(tree: SiteTree) -> None:
    assert [s.id for s in tree.ancestors("linjiang-qingshi")] == ["linjiang", "office"]
    assert tree.ancestors("office") == []
    assert tree.ancestors("atlantis") == []
    assert tree.parent_id("linjiang") == "office" and tree.parent_id("office") is None


def test_resolve_names_sites_and_subtrees_once_each_and_reports_the_unknown(tree: SiteTree) -> None:
    chosen, unknown = tree.resolve(["jiangbei", "linjiang-baisha"], ["linjiang", "nowhere"])
    assert chosen[:2] == ["jiangbei", "linjiang-baisha"]
    assert chosen.count("linjiang-baisha") == 1 and "linjiang" in chosen and "linjiang-liuxi" in chosen
    assert unknown == ["nowhere"]


def test_a_tree_that_loops_still_ends_its_walks() -> None:
    # The loader refuses cycles; a tree built from unchecked sites must still not hang.
    looped = SiteTree([Site(id="a", name_zh="甲", name_en="A", kind="county", parent="b"),
                       Site(id="b", name_zh="乙", name_en="B", kind="county", parent="a")])
    assert [s.id for s in looped.ancestors("a")] == ["b"]
    assert looped.roots() == []
    assert {s.id for s in looped.subtree("a")} == {"a", "b"}
