"""Start order from `after`, and dependency cycles named (pure, no I/O).

Invariant: start_order() lists every service after all the services it
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
    reverse = dependents(deps)
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


def dependents(deps):
    """Reverse edges: name -> set of the names that start after it.

    Every key of deps is present (possibly with an empty set); names only
    mentioned as dependencies are present too, so lookups never fail.
    """
    result = {name: set() for name in deps}
    for name, after in deps.items():
        for dep in after:
            result.setdefault(dep, set()).add(name)
    return result
