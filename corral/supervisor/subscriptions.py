"""Followers of the master's streams, and the counters that metrics read.

A Topic pushes each batch to every subscriber's callback, on the loop, and
never waits for one: a subscriber bounds itself (a frontend takes what fits
its buffer, tells Subscription.dropped what it skipped). Counters are plain
integers bumped by the shell; nothing here allocates per item beyond the
batch itself.
"""

import collections


class Subscription:
    """One follower: unsubscribe with close(); `dropped` counts skipped items."""

    def __init__(self, topic, callback):
        self._topic = topic
        self.callback = callback
        self.dropped = 0

    def drop(self, count):
        self.dropped += count
        self._topic.dropped += count

    def close(self):
        self._topic.followers.pop(self, None)


class LogSubscription:
    """A follower of the LogHub's lines (of one service or instance, or all)."""

    def __init__(self, hub, callback, name, counters):
        self._hub = hub
        self._token = hub.follow(callback, name)
        self._counters = counters
        self.dropped = 0

    def drop(self, count):
        self.dropped += count
        self._counters.log_lines_dropped += count

    def close(self):
        self._hub.unfollow(self._token)


class Topic:
    def __init__(self):
        self.followers = {}  # Subscription -> None, in the order they came
        self.dropped = 0  # items skipped by all subscribers, ever

    def subscribe(self, callback):
        subscription = Subscription(self, callback)
        self.followers[subscription] = None
        return subscription

    def publish(self, items):
        for subscription in list(self.followers):
            subscription.callback(items)


class Counters:
    """What happened since the master started, for /metrics and status."""

    def __init__(self):
        self.moves = collections.Counter()  # (from, to) state values -> count
        self.exits = collections.Counter()  # "exit", "signal", "spawn_error" -> count
        self.restarts = collections.Counter()  # service -> restarts by the policy
        self.log_lines_dropped = 0  # skipped by log followers that fell behind

    def moved(self, effect):
        self.moves[(effect.old.value, effect.new.value)] += 1
        if effect.event.value in ("crashed", "gave_up", "finished", "gone") and effect.exit:
            exit = effect.exit
            self.exits["spawn_error" if exit.error else "signal" if exit.signal else "exit"] += 1
        if effect.event.value == "crashed":
            self.restarts[effect.service] += 1
