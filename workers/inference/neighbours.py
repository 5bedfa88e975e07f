"""FAISS indexes over L2-normalised embeddings (inner product = cosine).

Exact (flat) search for small pools; HNSW beyond `exact_limit` vectors, where exact search stops
being interactive. Indexes are files beside a JSON of the ids they hold, so an update adds only
the new vectors (`VectorIndex.add`) instead of rebuilding.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

EXACT_LIMIT = 200_000


class VectorIndex:
    def __init__(self, dim: int, kind: str = "flat") -> None:
        import faiss

        self.dim, self.kind = dim, kind
        if kind == "flat":
            base = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            base = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            base.hnsw.efConstruction = 80
            base.hnsw.efSearch = 128
        else:
            raise ValueError(f"unknown index kind {kind!r}; known: flat, hnsw")
        self.index = faiss.IndexIDMap2(base)
        self.ids: set[int] = set()

    @classmethod
    def for_size(cls, dim: int, n: int, exact_limit: int = EXACT_LIMIT) -> "VectorIndex":
        return cls(dim, "flat" if n <= exact_limit else "hnsw")

    def add(self, ids: list[int], vectors: np.ndarray) -> int:
        """Add the vectors whose ids are new; returns how many were added."""
        keep = [i for i, id_ in enumerate(ids) if id_ not in self.ids]
        if not keep:
            return 0
        new_ids = np.asarray([ids[i] for i in keep], dtype=np.int64)
        self.index.add_with_ids(np.ascontiguousarray(vectors[keep], dtype=np.float32), new_ids)
        self.ids.update(int(i) for i in new_ids)
        return len(keep)

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, ids) of the k nearest per query row; id -1 where fewer exist."""
        k = max(1, min(k, len(self.ids))) if self.ids else 1
        return self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)

    def save(self, path: Path) -> None:
        import faiss

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        faiss.write_index(self.index, str(tmp))
        tmp.replace(path)
        path.with_suffix(".json").write_text(json.dumps({"dim": self.dim, "kind": self.kind, "ids": sorted(self.ids)}))

    @classmethod
    def load(cls, path: Path) -> "VectorIndex | None":
        import faiss

        meta_path = path.with_suffix(".json")
        if not path.exists() or not meta_path.exists():
            return None
        meta = json.loads(meta_path.read_text())
        index = cls.__new__(cls)
        index.dim, index.kind = meta["dim"], meta["kind"]
        index.index = faiss.read_index(str(path))
        index.ids = set(meta["ids"])
        return index


def near_duplicate_groups(ids: list[int], vectors: np.ndarray, threshold: float, index: VectorIndex,
                          k: int = 10) -> dict[int, int]:
    """Union-find over pairs with cosine >= threshold; returns id -> smallest id of its group (groups of 2+)."""
    parent = {i: i for i in ids}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    sims, found = index.search(vectors, k + 1)
    for row, id_ in enumerate(ids):
        for sim, other in zip(sims[row], found[row]):
            other = int(other)
            if other < 0 or other == id_ or other not in parent or sim < threshold:
                continue
            a, b = find(id_), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in ids:
        groups.setdefault(find(i), []).append(i)
    return {i: min(members) for members in groups.values() if len(members) > 1 for i in members}
