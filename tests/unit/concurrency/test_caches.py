"""Caches stay bounded, forgetting the least recently used entries."""

import pytest

from tracker_flavor.concurrency.caches import BoundedCache, Once

pytestmark = pytest.mark.unit


def test_caches_forget_the_least_recently_used_entries():
    cache: BoundedCache[str, int] = BoundedCache(size=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # now the most recent
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c"), len(cache)) == (1, None, 3, 2)


def test_put_new_tells_the_first_put_and_pop_forgets():
    cache: BoundedCache[str, int] = BoundedCache(size=2)
    assert cache.put_new("a", 1) and not cache.put_new("a", 2)
    assert cache.get("a") == 1
    assert cache.pop("a") == 1 and cache.pop("a") is None and len(cache) == 0


def test_once_tells_the_first_time_an_event_happens():
    once = Once()
    assert once.first("warning", 1) and not once.first("warning", 1) and once.first("warning", 2)
