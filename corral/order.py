"""Start order from `after`, and dependency cycles named (pure, no I/O).

Invariant: start_order() (and waves(), for `corral check`) lists every service after all the services it
names in `after`, and otherwise keeps the order the services were declared
in, so the same config always starts the same way. Stopping uses the
reverse of that order.

`deps` maps a name to the names it starts after: {"web": ("db",), "db": ()}.
Names that appear only as dependencies (not as keys) are outside the set
being ordered: they are ignored, so a caller can order a subset. Whether
such names exist at all is the config loader's check, not this module's.
"""

import heapq


def find_cycle(deps):
    """A dependency cycle as names in order, e.g. ["a", "b", "a"], or None.

    "a", "b" means a starts after b. The search walks services in
    declaration order so the same config always reports the same cycle.
    """
    done = set()
    for root in deps:
        if root in done:
            continue
        # Iterative DFS (no recursion limit): a stack of (name, its deps
        # iterator) is exactly the current path.
        path, on_path = [root], {root}
        stack = [iter(deps[root])]
        while stack:
            step = next(stack[-1], None)
            if step is None:
                stack.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
                continue
            if step not in deps or step in done:
                continue
            if step in on_path:
                return path[path.index(step):] + [step]
            path.append(step)
            on_path.add(step)
            stack.append(iter(deps[step]))
    return None


def format_cycle(cycle):
    return " -> ".join(cycle)


def start_order(deps):
    """Names ordered dependencies first; raises ValueError on a cycle.

    Among all valid orders this picks the one that lists earlier-declared
    services first whenever their dependencies allow (Kahn's algorithm with
    the declaration index as priority), so services without `after` keep
    their file order.
    """
    cycle = find_cycle(deps)
    if cycle is not None:
        raise ValueError(f"dependency cycle: {format_cycle(cycle)}")
    index = {name: i for i, name in enumerate(deps)}
    waiting = {name: {d for d in deps[name] if d in deps} for name in deps}
    reverse = {name: set() for name in deps}  # name -> those that start after it
    for name, after in deps.items():
        for dep in after:
            if dep in reverse:
                reverse[dep].add(name)
    ready = [index[name] for name, pending in waiting.items() if not pending]
    heapq.heapify(ready)
    order = []
    names = list(deps)
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for user in reverse[name]:
            waiting[user].discard(name)
            if not waiting[user]:
                heapq.heappush(ready, index[user])
    return order


def waves(deps):
    """The start order in waves: each name in the first wave after all of its
    dependencies; within a wave, the declaration order (`corral check`)."""
    level = {}
    for name in start_order(deps):
        level[name] = 1 + max((level[d] for d in deps[name] if d in level), default=-1)
    result = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for name in deps:
        result[level[name]].append(name)
    return result
