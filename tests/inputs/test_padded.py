"""Buffers with room for a halo: handed out as their interior, found again, reused once free.

The property checked throughout: a buffer is never handed out while anything
still views it, and :func:`room_around` answers for arrays of a pool only.
"""

from __future__ import annotations

import gc
import pickle
import threading

import numpy as np

from pipeline.inputs.padded import BufferPool, room_around


def test_interior_view_and_the_array_around_it():
    pool = BufferPool()
    tile = pool.padded_empty((4, 6), np.uint16, (2, 0), (1, 3))
    assert tile.shape == (4, 6) and tile.dtype == np.uint16
    around = room_around(tile)
    assert around is not None and around.shape == (7, 9) and around.flags.c_contiguous
    tile[...] = 7
    # The tile is rows 2..5, columns 0..5 of the array around it.
    assert (around[2:6, :6] == 7).all()
    around[:2] = 1  # the margins are not the tile
    assert (tile == 7).all()
    # A view of the tile (a new axis, as the canonical layout adds) finds it too.
    assert room_around(tile[None, ..., None]).shape == (7, 9)


def test_arrays_not_from_a_pool_have_no_room():
    image = np.zeros((10, 10), np.uint8)
    assert room_around(image) is None
    assert room_around(image[2:5, 2:5]) is None  # its surroundings are the caller's pixels
    assert room_around([1, 2]) is None


def test_a_buffer_is_reused_only_once_nothing_views_it():
    pool = BufferPool()
    first = pool.padded_empty((8, 8), np.uint8, (1, 1), (1, 1))
    address = room_around(first).__array_interface__["data"][0]
    second = pool.padded_empty((8, 8), np.uint8, (1, 1), (1, 1))
    assert not np.shares_memory(first, second)  # the first is still viewed
    view = first[None]
    del first
    third = pool.padded_empty((8, 8), np.uint8, (1, 1), (1, 1))
    assert not np.shares_memory(view, third)  # a view of it is enough to keep it
    del view
    gc.collect()
    fourth = pool.padded_empty((8, 8), np.uint8, (0, 0), (1, 2))  # another layout, same bytes
    assert room_around(fourth).__array_interface__["data"][0] == address
    assert room_around(fourth).shape == (9, 10)
    assert not np.shares_memory(fourth, second) and not np.shares_memory(fourth, third)


def test_buffers_far_larger_than_needed_are_not_reused():
    pool = BufferPool()
    big = pool.buffer(1000)
    address = big.__array_interface__["data"][0]
    del big
    assert pool.buffer(100).__array_interface__["data"][0] != address
    assert pool.buffer(900).__array_interface__["data"][0] == address


def test_limit_bounds_what_the_pool_keeps():
    pool = BufferPool(limit=2)
    held = [pool.buffer(64) for _ in range(5)]  # all in use: five buffers, two kept
    assert len({b.__array_interface__["data"][0] for b in held}) == 5
    assert len(pool._buffers) == 2


def test_threads_never_share_a_buffer():
    pool = BufferPool()
    errors = []

    def work(seed):
        local = np.random.default_rng(seed)
        for _ in range(200):
            tile = pool.padded_empty((16, 16), np.uint8, (2, 2), (2, 2))
            value = int(local.integers(0, 256))
            tile[...] = value
            if not (tile == value).all():
                errors.append(seed)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_pickled_pool_starts_empty():
    pool = BufferPool(limit=5)
    kept = pool.buffer(32)
    copy = pickle.loads(pickle.dumps(pool))
    assert copy.limit == 5 and copy._buffers == []
    assert kept.nbytes == 32
