"""corral.order: start order from `after`, cycles named."""

import random

import pytest

from corral.order import find_cycle, start_order, waves


def assert_valid(deps, order):
    assert sorted(order) == sorted(deps)
    position = {name: i for i, name in enumerate(order)}
    for name, after in deps.items():
        for dep in after:
            if dep in deps:
                assert position[dep] < position[name], (dep, name, order)


class TestFindCycle:
    def test_empty(self):
        assert find_cycle({}) is None

    def test_no_cycle(self):
        assert find_cycle({"web": ("db", "cache"), "db": (), "cache": ("db",)}) is None

    def test_self_loop(self):
        assert find_cycle({"a": ("a",)}) == ["a", "a"]

    def test_two(self):
        assert find_cycle({"a": ("b",), "b": ("a",)}) == ["a", "b", "a"]

    def test_three_in_order(self):
        assert find_cycle({"a": ("b",), "b": ("c",), "c": ("a",)}) == ["a", "b", "c", "a"]

    def test_cycle_not_through_first(self):
        deps = {"x": ("a",), "a": ("b",), "b": ("a",), "z": ()}
        assert find_cycle(deps) == ["a", "b", "a"]

    def test_cycle_only_the_loop(self):
        # The tail leading into the loop is not part of it.
        deps = {"top": ("mid",), "mid": ("p",), "p": ("q",), "q": ("p",)}
        assert find_cycle(deps) == ["p", "q", "p"]

    def test_diamond_is_not_a_cycle(self):
        deps = {"top": ("l", "r"), "l": ("base",), "r": ("base",), "base": ()}
        assert find_cycle(deps) is None

    def test_unknown_names_ignored(self):
        assert find_cycle({"a": ("ghost",)}) is None

    def test_long_chain_no_recursion_limit(self):
        n = 5000
        deps = {f"s{i}": (f"s{i + 1}",) for i in range(n)}
        deps[f"s{n}"] = ("s0",)
        cycle = find_cycle(deps)
        assert cycle[0] == cycle[-1] == "s0"
        assert len(cycle) == n + 2


class TestStartOrder:
    def test_no_deps_keeps_declaration_order(self):
        deps = {"c": (), "a": (), "b": ()}
        assert start_order(deps) == ["c", "a", "b"]

    def test_dependencies_first(self):
        deps = {"web": ("db",), "db": ()}
        assert start_order(deps) == ["db", "web"]

    def test_stable_earliest_declared_first(self):
        deps = {"a": ("c",), "b": (), "c": ()}
        # b needs nothing and comes before c in the file; a waits for c.
        assert start_order(deps) == ["b", "c", "a"]

    def test_chain(self):
        deps = {"a": ("b",), "b": ("c",), "c": ()}
        assert start_order(deps) == ["c", "b", "a"]

    def test_diamond(self):
        deps = {"top": ("l", "r"), "l": ("base",), "r": ("base",), "base": ()}
        assert start_order(deps) == ["base", "l", "r", "top"]

    def test_repeated_dependency(self):
        assert start_order({"a": ("b", "b"), "b": ()}) == ["b", "a"]

    def test_unknown_dependencies_ignored(self):
        assert start_order({"a": ("ghost",), "b": ()}) == ["a", "b"]

    def test_cycle_raises_naming_it(self):
        with pytest.raises(ValueError, match=r"dependency cycle: a -> b -> a"):
            start_order({"a": ("b",), "b": ("a",), "c": ()})

    def test_same_input_same_output(self):
        deps = {"x": ("z",), "y": (), "z": ("y",), "w": ("y",)}
        assert start_order(deps) == start_order(dict(deps)) == ["y", "z", "x", "w"]

    def test_random_graphs_valid(self):
        rng = random.Random(7)
        for _ in range(200):
            names = [f"n{i}" for i in range(rng.randint(1, 12))]
            rng.shuffle(names)
            # Edges only towards names earlier in a hidden order: acyclic.
            hidden = sorted(names)
            deps = {
                name: tuple(d for d in hidden[: hidden.index(name)] if rng.random() < 0.3)
                for name in names
            }
            assert find_cycle(deps) is None
            assert_valid(deps, start_order(deps))


class TestWaves:
    def test_waves_follow_after_and_keep_the_file_order(self):
        deps = {"web": ("db", "cache"), "worker": ("db",), "db": (), "cache": (), "cron": ()}
        assert waves(deps) == [["db", "cache", "cron"], ["web", "worker"]]

    def test_a_chain_is_one_service_a_wave(self):
        assert waves({"c": ("b",), "b": ("a",), "a": ()}) == [["a"], ["b"], ["c"]]

    def test_empty(self):
        assert waves({}) == []
