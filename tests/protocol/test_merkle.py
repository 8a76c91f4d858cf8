"""The RFC 6962 / RFC 9162 Merkle tree: reference vectors, a recursive reference model, exhaustive properties."""

from __future__ import annotations

import functools
import hashlib

import pytest

from protocol import merkle
from protocol.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

# The Certificate Transparency reference test data (certificate-transparency merkle_tree_test,
# transparency-dev/merkle testonly): 8 leaf inputs, the roots of every prefix, and proofs.
CT_INPUTS = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
H_L1 = "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"  # leaf 1
H_L4 = "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"  # leaf 4
H_L6 = "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"  # leaf 6
H_23 = "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"  # leaves 2..3
H_45 = "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"  # leaves 4..5
H_67 = "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"  # leaves 6..7
H_47 = "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"  # leaves 4..7
# (0-based index, tree size) -> PATH
CT_INCLUSION = {
    (0, 1): [],
    (0, 8): [H_L1, H_23, H_47],
    (5, 8): [H_L4, H_67, CT_ROOTS[4]],
    (2, 3): [CT_ROOTS[2]],
    (1, 5): [CT_ROOTS[1], H_23, H_L4],
}
# (old size, new size) -> PROOF
CT_CONSISTENCY = {
    (1, 1): [],
    (1, 8): [H_L1, H_23, H_47],
    (6, 8): [H_45, H_67, CT_ROOTS[4]],
    (2, 5): [H_23, H_L4],
    (6, 7): [H_45, H_L6, CT_ROOTS[4]],
}
CT_LEAVES = [leaf_hash(d) for d in CT_INPUTS]


def leaves(n: int) -> list[bytes]:
    """n distinct leaf hashes."""
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def flipped(h: bytes, pos: int) -> bytes:
    """h with one byte changed."""
    return h[:pos] + bytes([h[pos] ^ 0x01]) + h[pos + 1 :]


# A literal transcription of RFC 6962 section 2.1 (recursive, slicing): the model the module must match.
def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return node_hash(ref_mth(d[:k]), ref_mth(d[k:]))


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    return ref_path(m, d[:k]) + [ref_mth(d[k:])] if m < k else ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [ref_mth(d)]
    k = _k(len(d))
    return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])] if m <= k else ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


def directions(index: int, size: int) -> list[bool]:
    """The left/right turns from the root to a leaf (what an inclusion proof's verification depends on)."""
    turns: list[bool] = []
    while size > 1:
        k = _k(size)
        turns.append(index >= k)
        index, size = (index, k) if index < k else (index - k, size - k)
    return turns


class TestReferenceVectors:
    def test_hashes(self) -> None:
        assert EMPTY_ROOT == hashlib.sha256(b"").digest() == root([])
        assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
        assert node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
        assert CT_LEAVES[1].hex() == H_L1 and CT_LEAVES[4].hex() == H_L4 and CT_LEAVES[6].hex() == H_L6

    @pytest.mark.parametrize("size", range(9))
    def test_roots(self, size: int) -> None:
        assert root(CT_LEAVES[:size]).hex() == CT_ROOTS[size]
        assert Frontier.from_leaves(CT_LEAVES[:size]).root().hex() == CT_ROOTS[size]

    @pytest.mark.parametrize(("index", "size"), list(CT_INCLUSION))
    def test_inclusion(self, index: int, size: int) -> None:
        proof = inclusion_proof(CT_LEAVES[:size], index)
        assert [p.hex() for p in proof] == CT_INCLUSION[(index, size)]
        assert verify_inclusion(CT_LEAVES[index], index, size, proof, bytes.fromhex(CT_ROOTS[size]))

    @pytest.mark.parametrize(("old", "new"), list(CT_CONSISTENCY))
    def test_consistency(self, old: int, new: int) -> None:
        proof = consistency_proof(CT_LEAVES[:new], old)
        assert [p.hex() for p in proof] == CT_CONSISTENCY[(old, new)]
        assert verify_consistency(old, new, bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new]), proof)


ALL64 = leaves(64)
ROOTS64 = [root(ALL64[:n]) for n in range(65)]


@functools.cache
def cproof64(old: int, new: int) -> list[bytes]:
    """PROOF(old, D[new]) over the first `new` of ALL64, computed once."""
    return consistency_proof(ALL64[:new], old)


class TestExhaustive:
    """Every size 1..64, every index and every old size."""

    SIZES = range(1, 65)
    ALL = ALL64
    ROOTS = ROOTS64

    def test_matches_the_recursive_reference(self) -> None:
        for n in range(65):
            d = self.ALL[:n]
            assert root(d) == ref_mth(d) == self.ROOTS[n]
            for i in range(n):
                assert inclusion_proof(d, i) == ref_path(i, d)
            for m in range(1, n + 1):
                assert consistency_proof(d, m) == ref_subproof(m, d, True)

    @pytest.mark.parametrize("n", SIZES)
    def test_inclusion(self, n: int) -> None:
        d, r = self.ALL[:n], self.ROOTS[n]
        for i in range(n):
            proof = inclusion_proof(d, i)
            assert verify_inclusion(d[i], i, n, proof, r)
            assert not verify_inclusion(flipped(d[i], i % 32), i, n, proof, r)
            assert not verify_inclusion(d[i], i, n, proof, flipped(r, i % 32))
            for k, p in enumerate(proof):
                for pos in range(32):
                    bad = proof[:k] + [flipped(p, pos)] + proof[k + 1 :]
                    assert not verify_inclusion(d[i], i, n, bad, r)
            assert not verify_inclusion(d[i], i, n, proof[:-1], r) or not proof
            assert not verify_inclusion(d[i], i, n, proof + [r], r)
            for j in range(n + 2):
                if j != i:
                    assert not verify_inclusion(d[i], j, n, proof, r)
            for m in range(0, 70):
                if m == n:
                    continue
                # Against the other size's own root the proof always fails; against this root it
                # fails unless the leaf's path has the same shape (an inclusion proof does not bind
                # the tree size: the signed tree head does).
                assert not verify_inclusion(d[i], i, m, proof, self.ROOTS[m] if m <= 64 else r) or m > 64
                same_shape = i < m and directions(i, m) == directions(i, n)
                assert verify_inclusion(d[i], i, m, proof, r) == same_shape

    @pytest.mark.parametrize("n", SIZES)
    def test_consistency(self, n: int) -> None:
        d, new_root = self.ALL[:n], self.ROOTS[n]
        for m in range(0, n + 1):
            old_root = self.ROOTS[m]
            proof = cproof64(m, n)
            assert verify_consistency(m, n, old_root, new_root, proof)
            assert not verify_consistency(m, n, flipped(old_root, m % 32), new_root, proof)
            # Old size 0 proves nothing about the new tree (the empty tree is a prefix of every tree).
            assert verify_consistency(m, n, old_root, flipped(new_root, m % 32), proof) == (m == 0)
            for other in range(n + 1):
                if other != m and cproof64(other, n) != proof:  # both [] for 0 and n
                    assert not verify_consistency(m, n, self.ROOTS[other], new_root, proof)
                    assert not verify_consistency(other, n, self.ROOTS[other], new_root, proof)
            for k, p in enumerate(proof):
                for pos in range(32):
                    bad = proof[:k] + [flipped(p, pos)] + proof[k + 1 :]
                    assert not verify_consistency(m, n, old_root, new_root, bad)
            if proof:
                assert not verify_consistency(m, n, old_root, new_root, proof[:-1])
            assert not verify_consistency(m, n, old_root, new_root, proof + [new_root])
            # Against another size's own root the proof fails (unless it is also that size's proof:
            # old size 0). Like an inclusion proof it does not bind the new size: the tree head does.
            for size in range(m, 65):
                if size != n:
                    valid = cproof64(m, size) == proof
                    assert verify_consistency(m, size, old_root, self.ROOTS[size], proof) == valid

    def test_inclusion_via_consistency_of_prefixes(self) -> None:
        # A leaf proven in an old tree stays provable in every later tree that is consistent with it.
        for n in self.SIZES:
            for i in range(n):
                assert verify_inclusion(self.ALL[i], i, 64, inclusion_proof(self.ALL, i), self.ROOTS[64])


class TestEdgeCases:
    def test_bad_arguments(self) -> None:
        d = leaves(5)
        with pytest.raises(IndexError):
            inclusion_proof(d, 5)
        with pytest.raises(IndexError):
            inclusion_proof(d, -1)
        with pytest.raises(IndexError):
            inclusion_proof([], 0)
        with pytest.raises(ValueError):
            consistency_proof(d, 6)
        with pytest.raises(ValueError):
            consistency_proof(d, -1)
        assert consistency_proof(d, 0) == [] and consistency_proof([], 0) == []

    def test_verifiers_reject_malformed_input(self) -> None:
        d = leaves(5)
        r = root(d)
        proof = inclusion_proof(d, 2)
        assert not verify_inclusion(d[2], 2, 0, [], EMPTY_ROOT)
        assert not verify_inclusion(d[2], -1, 5, proof, r)
        assert not verify_inclusion(d[2][:31], 2, 5, proof, r)
        assert not verify_inclusion(d[2], 2, 5, [p + b"\x00" for p in proof], r)
        assert not verify_inclusion(d[2], 2, 5, proof, r[:16])
        cproof = consistency_proof(d, 3)
        assert not verify_consistency(6, 5, r, r, [])
        assert not verify_consistency(-1, 5, EMPTY_ROOT, r, [])
        assert not verify_consistency(3, 5, root(d[:3]), r, [])
        assert not verify_consistency(3, 5, root(d[:3]), r, [p[:31] for p in cproof])
        assert not verify_consistency(5, 5, r, r, cproof)
        assert not verify_consistency(0, 5, EMPTY_ROOT, r, cproof)
        assert verify_consistency(0, 5, EMPTY_ROOT, r, []) and verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
        assert verify_consistency(3, 5, bytearray(root(d[:3])), memoryview(r), [bytearray(p) for p in cproof])

    def test_large_tree_has_no_recursion_limit(self) -> None:
        n = (1 << 17) + 3
        d = leaves(n)
        r = root(d)
        assert Frontier.from_leaves(d).root() == r
        for i in (0, n // 2, n - 1):
            assert verify_inclusion(d[i], i, n, inclusion_proof(d, i), r)
        for m in (1, 1 << 16, n - 2):
            assert verify_consistency(m, n, root(d[:m]), r, consistency_proof(d, m))


class TestFrontier:
    def test_every_size_matches_root_and_round_trips(self) -> None:
        d = leaves(301)
        f = Frontier()
        for n in range(301):
            assert f.size == n
            assert f.root() == root(d[:n])
            data = f.to_bytes()
            g = Frontier.from_bytes(data)
            assert g == f and g.size == n and g.root() == f.root() and g.to_bytes() == data
            assert len(data) == 12 + 32 * bin(n).count("1")
            assert [s for _, s in f.nodes] == [1 << b for b in range(n.bit_length() - 1, -1, -1) if n >> b & 1]
            if n < 300:
                assert f.append(d[n]) == n
        assert Frontier.from_leaves(d[:300]) == f

    def test_restored_frontier_keeps_appending(self) -> None:
        d = leaves(100)
        for cut in (0, 1, 37, 64, 99):
            f = Frontier.from_bytes(Frontier.from_leaves(d[:cut]).to_bytes())
            for h in d[cut:]:
                f.append(h)
            assert f.root() == root(d) and f == Frontier.from_leaves(d)

    def test_rejects_bad_input(self) -> None:
        f = Frontier.from_leaves(leaves(5))
        data = f.to_bytes()
        for bad in (b"", data[:-1], data + b"\x00", b"XXXX" + data[4:], data[:4] + (7).to_bytes(8, "big") + data[12:]):
            with pytest.raises(ValueError):
                Frontier.from_bytes(bad)
        with pytest.raises(ValueError):
            f.append(b"short")
        assert f.size == 5
        assert Frontier.from_bytes(Frontier().to_bytes()).root() == EMPTY_ROOT
        assert Frontier.from_bytes(memoryview(data)) == f
        assert merkle.__all__ and repr(f).startswith("Frontier(size=5")
