"""The Merkle tree of RFC 6962 / RFC 9162 section 2.1, for a tamper-evident append-only log.

Pure Python (``hashlib`` only). Leaves are given as their 32-byte leaf hashes (``leaf_hash(data)``).
Every function is iterative: no recursion depth limit, and subtree roots are computed level by level
over index ranges (no quadratic slicing), so root and proofs are O(n) for n leaves.

Hashes: ``leaf_hash(d) = SHA-256(0x00 || d)``, ``node_hash(l, r) = SHA-256(0x01 || l || r)``; the
root of the empty tree is ``SHA-256("")``. A tree of n > 1 leaves splits at k, the largest power of
two smaller than n: ``MTH(D[n]) = node_hash(MTH(D[0:k]), MTH(D[k:n]))``. Hashing level by level and
carrying an unpaired last node up unchanged builds exactly this (left-balanced) tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "consistency_proof",
    "inclusion_proof",
    "inclusion_proofs",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

#: Size of every hash in bytes (SHA-256).
HASH_SIZE = 32
#: Root hash of the empty tree: SHA-256 of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """The hash of a leaf: SHA-256(0x00 || data)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_root(hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH of the leaves ``hashes[lo:hi]``, computed level by level without copying the range first."""
    n = hi - lo
    if n <= 0:
        return EMPTY_ROOT
    if n == 1:
        return hashes[lo]
    sha = _sha256
    level = [sha(b"\x01" + hashes[i] + hashes[i + 1]).digest() for i in range(lo, hi - 1, 2)]
    if n & 1:
        level.append(hashes[hi - 1])
    while len(level) > 1:
        carry = level[-1] if len(level) & 1 else None
        pairs = iter(level)
        level = [sha(b"\x01" + a + b).digest() for a, b in zip(pairs, pairs)]
        if carry is not None:
            level.append(carry)
    return level[0]


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]): the root hash of the tree with these leaf hashes (EMPTY_ROOT for none)."""
    return _range_root(leaf_hashes, 0, len(leaf_hashes))


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) of RFC 6962 section 2.1.1: the audit path of one leaf, leaf level first.

    Raises IndexError unless 0 <= index < len(leaf_hashes).
    """
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise IndexError(f"leaf index {index} outside a tree of size {n}")
    top_down: list[bytes] = []
    lo, hi = 0, n  # the subtree D[lo:hi] that holds the leaf
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            top_down.append(_range_root(leaf_hashes, mid, hi))
            hi = mid
        else:
            top_down.append(_range_root(leaf_hashes, lo, mid))
            lo = mid
    top_down.reverse()
    return top_down


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, D[n]) of RFC 6962 section 2.1.2, n = len(leaf_hashes).

    Empty when old_size is 0 or n (nothing to prove). Raises ValueError unless 0 <= old_size <= n.
    """
    n = len(leaf_hashes)
    if not 0 <= old_size <= n:
        raise ValueError(f"old size {old_size} outside 0..{n}")
    if old_size in (0, n):
        return []
    top_down: list[bytes] = []
    lo, hi, m, whole = 0, n, old_size, True  # SUBPROOF(m, D[lo:hi], whole)
    while m != hi - lo:
        mid = lo + _split(hi - lo)
        if m <= mid - lo:
            top_down.append(_range_root(leaf_hashes, mid, hi))
            hi = mid
        else:
            top_down.append(_range_root(leaf_hashes, lo, mid))
            m -= mid - lo
            lo, whole = mid, False
    if not whole:
        top_down.append(_range_root(leaf_hashes, lo, hi))
    top_down.reverse()
    return top_down


def _valid_hashes(*hashes: bytes) -> bool:
    """True when every item is a bytes-like value of HASH_SIZE bytes."""
    return all(isinstance(h, (bytes, bytearray, memoryview)) and len(h) == HASH_SIZE for h in hashes)


def verify_inclusion(leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Check an inclusion proof (RFC 9162 section 2.1.3.2); False, never an exception, for bad hashes, sizes or proofs."""
    if not (0 <= index < tree_size and _valid_hashes(leaf_hash, root, *proof)):
        return False
    fn, sn = index, tree_size - 1
    r = bytes(leaf_hash)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(bytes(p), r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, bytes(p))
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == bytes(root)


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """Check a consistency proof (RFC 9162 section 2.1.4.2); False, never an exception, for bad hashes, sizes or proofs.

    Edge cases outside the RFC algorithm: equal sizes need an empty proof and equal roots; old size 0
    needs an empty proof and ``old_root == EMPTY_ROOT`` (the empty tree is a prefix of every tree).
    """
    if not (0 <= old_size <= new_size and _valid_hashes(old_root, new_root, *proof)):
        return False
    old_root, new_root = bytes(old_root), bytes(new_root)
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = [bytes(p) for p in proof]
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is itself a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


class Frontier:
    """The right frontier (compact range) of a tree: roots of its perfect subtrees, largest first.

    A tree of size n is the concatenation of perfect subtrees whose sizes are the set bits of n, so
    ``append`` and ``root`` are O(log n) and the state is at most 64 hashes. ``to_bytes`` gives a
    persistent form (magic, 8-byte big-endian size, the subtree roots) so a server can keep appending
    without reloading every leaf.
    """

    MAGIC = b"MTF1"
    __slots__ = ("_nodes", "_size")

    def __init__(self) -> None:
        """An empty tree."""
        self._nodes: list[tuple[bytes, int]] = []  # (subtree root, subtree size), sizes strictly decreasing
        self._size = 0

    @classmethod
    def from_leaves(cls, leaf_hashes: Iterable[bytes]) -> Frontier:
        """The frontier of the tree with these leaf hashes."""
        frontier = cls()
        for h in leaf_hashes:
            frontier.append(h)
        return frontier

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def nodes(self) -> list[tuple[bytes, int]]:
        """A copy of the (subtree root, subtree size) pairs, largest (leftmost) subtree first."""
        return list(self._nodes)

    def append(self, leaf_hash: bytes) -> int:
        """Append one leaf hash; returns its index. Raises ValueError unless it is 32 bytes."""
        if not _valid_hashes(leaf_hash):
            raise ValueError(f"a leaf hash must be {HASH_SIZE} bytes")
        nodes = self._nodes
        node, size = bytes(leaf_hash), 1
        while nodes and nodes[-1][1] == size:
            left, _ = nodes.pop()
            node, size = node_hash(left, node), size * 2
        nodes.append((node, size))
        self._size += 1
        return self._size - 1

    def root(self) -> bytes:
        """MTH of the tree so far: the subtree roots folded from the right (EMPTY_ROOT when empty)."""
        if not self._nodes:
            return EMPTY_ROOT
        acc = self._nodes[-1][0]
        for node, _ in reversed(self._nodes[:-1]):
            acc = node_hash(node, acc)
        return acc

    def to_bytes(self) -> bytes:
        """Serialise: MAGIC, the size (8 bytes, big-endian), then the subtree roots largest first."""
        return self.MAGIC + self._size.to_bytes(8, "big") + b"".join(node for node, _ in self._nodes)

    @classmethod
    def from_bytes(cls, data: bytes) -> Frontier:
        """Parse ``to_bytes`` output. Raises ValueError when the data is malformed."""
        data = bytes(data)
        head = len(cls.MAGIC) + 8
        if len(data) < head or not data.startswith(cls.MAGIC):
            raise ValueError("not a serialised Merkle frontier")
        size = int.from_bytes(data[len(cls.MAGIC) : head], "big")
        sizes = [1 << b for b in range(size.bit_length() - 1, -1, -1) if size >> b & 1]
        if len(data) != head + HASH_SIZE * len(sizes):
            raise ValueError(f"a frontier of size {size} needs {len(sizes)} hashes")
        frontier = cls()
        frontier._size = size
        frontier._nodes = [(data[head + i * HASH_SIZE : head + (i + 1) * HASH_SIZE], s) for i, s in enumerate(sizes)]
        return frontier

    def __eq__(self, other: object) -> bool:
        """Frontiers are equal when they describe the same tree state."""
        return isinstance(other, Frontier) and self._size == other._size and self._nodes == other._nodes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        """Size and root, for debugging."""
        return f"Frontier(size={self._size}, root={self.root().hex()})"


def inclusion_proofs(leaf_hashes: Sequence[bytes], indexes: Iterable[int]) -> dict[int, list[bytes]]:
    """PATH(i, D[n]) for each index i at once: the tree's levels are hashed once (O(n)), then each path is read from
    them in O(log n), where ``inclusion_proof`` costs O(n) a path. Every subtree of RFC 6962's recursion is an aligned
    block of a level (a node hashed level by level, an unpaired last node carried up unchanged). Raises IndexError
    for an index outside the tree."""
    n = len(leaf_hashes)
    levels: list[Sequence[bytes]] = [leaf_hashes]
    while len(levels[-1]) > 1:
        prev = levels[-1]
        up = [node_hash(prev[i], prev[i + 1]) for i in range(0, len(prev) - 1, 2)]
        if len(prev) & 1:
            up.append(prev[-1])
        levels.append(up)
    out: dict[int, list[bytes]] = {}
    for index in indexes:
        if not 0 <= index < n:
            raise IndexError(f"leaf index {index} outside a tree of size {n}")
        path: list[bytes] = []
        lo, hi = 0, n
        while hi - lo > 1:
            k = _split(hi - lo)
            t, mid = k.bit_length() - 1, lo + k
            if index < mid:
                path.append(levels[t][mid >> t])
                hi = mid
            else:
                path.append(levels[t][lo >> t])
                lo = mid
        path.reverse()
        out[index] = path
    return out
