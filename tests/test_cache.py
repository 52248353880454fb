"""The LRU behind the vector caches: bounded, most recently used kept, safe across threads."""

import threading

from index.cache import LRU


def test_least_recently_used_goes_first():
    cache: LRU[str, int] = LRU(2)
    cache.put_many([("a", 1), ("b", 2)])
    assert cache.get_many(["a"]) == {"a": 1}  # "a" is now the most recent
    cache.put_many([("c", 3)])
    assert cache.get_many(["a", "b", "c"]) == {"a": 1, "c": 3}
    assert len(cache) == 2


def test_putting_again_refreshes_and_replaces():
    cache: LRU[str, int] = LRU(2)
    cache.put_many([("a", 1), ("b", 2), ("a", 10), ("c", 3)])
    assert cache.get_many(["a", "b", "c"]) == {"a": 10, "c": 3}


def test_many_threads_never_exceed_the_bound():
    cache: LRU[int, int] = LRU(50)
    sizes: list[int] = []  # seen between other threads' writes, not only at the end

    def work(offset: int) -> None:
        for i in range(2_000):
            cache.put_many([(offset + i % 80, i)])
            sizes.append(len(cache))
            cache.get_many([offset + (i * 7) % 80])

    threads = [threading.Thread(target=work, args=(n * 1_000,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sizes) == 8_000 and max(sizes) == 50
    assert len(cache) == 50
