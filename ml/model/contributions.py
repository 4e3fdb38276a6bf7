"""Exact per-feature contributions of a LightGBM booster, fast: native TreeSHAP once per route.

LightGBM's ``pred_contrib`` (path-dependent TreeSHAP) costs trees × leaves × depth² per row: a
few hundred rows per second for a typical champion, hours for a million customers. Two facts make
it cheap without changing a single number:

- Path-dependent TreeSHAP is linear in the leaf values, and a leaf's share depends on a row only
  through the directions the row takes at the internal nodes on that leaf's path (the cover
  weights of the other branches are fixed by the tree).
- So for a *group* of leaves (all leaves below one node), the group's share depends on a row only
  through its directions at the group's nodes and their ancestors: its *route code* (one bit per
  such node). Rows with the same code get identical shares.

Per tree, the leaves are split into groups whose codes have at most ``GROUP_BITS`` bits (a small
tree is one group: the whole tree). Per group: every row's code from vectorised comparisons that
reproduce LightGBM's routing exactly (``<=`` thresholds on float32 input, missing types
None/Zero/NaN with their default direction, categorical bitsets); one representative row per
distinct code, whose share LightGBM computes itself (``pred_contrib`` of that one tree, on a copy
of the booster whose leaves outside the group are set to 0); and every row adds its code's
share, for the features the group's nodes split on. The sum over groups and trees equals
``pred_contrib`` (up to floating-point summation order).

Routes come from bins, not from one comparison per node: per feature, the thresholds of all its
nodes cut the values into a few hundred bins on which every node's decision is constant, so a
row's bin is found once (a binary search) and each tree's route code is an OR of one table
lookup per feature the tree uses (``_Binning``). The tables are filled by the same decision
function, evaluated on one value of each bin.

The same pass also returns the raw margin, bit for bit what ``predict(raw_score=True)`` gives:
the route code fixes the leaf, and each tree's leaf value is added in tree order in float64, as
LightGBM sums them. Scoring needs both, so it no longer predicts separately.

Before trusting the routing, the leaves it implies are compared with LightGBM's ``pred_leaf`` on
a sample of rows; on any disagreement, or for a model this module does not reproduce (linear
trees, averaged output, several trees per iteration), it falls back to plain ``pred_contrib``.
Rows are processed in chunks so the lookups stay in cache.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

CHUNK_ROWS = 1 << 15
CHECK_ROWS = 4096  # rows whose routing is checked against LightGBM's pred_leaf
GROUP_BITS = 16  # a group of leaves is keyed on at most this many nodes (unless one path is longer);
# measured on a 95-tree champion, 300k rows: 10 bits 946 groups 9.2–9.7 CPU-s, 14 bits 550 groups 6.0–7.2;
# 950k rows (binned routes): 14 bits 550 groups 9.8–10.5 s wall, 16 bits 470 groups 9.4–10.4 (medians 10.4 / 9.4);
# 18 bits 421 groups but 2.3x the representatives: slower
PARALLEL_ROWS = 20_000  # representative batches at least this large use LightGBM's threads
K_ZERO_THRESHOLD = 1e-35  # LightGBM's kZeroThreshold: smaller magnitudes are read as 0


class RoutingMismatch(RuntimeError):
    """The reproduced routing disagrees with LightGBM's own (never expected; triggers the fallback)."""


class _Unsupported(ValueError):
    """A tree this module does not reproduce (linear leaves, an unknown decision type)."""


@dataclass
class _Node:
    feature: int
    categorical: bool
    threshold: np.float32  # numerical: the largest float32 ≤ LightGBM's double threshold
    categories: np.ndarray | None  # categorical: lookup table category → goes left
    default_left: bool
    missing_type: str  # None | Zero | NaN
    left: int = 0  # child: internal node index, or ~leaf index
    right: int = 0


def _float32_at_most(t: float) -> np.float32:
    """The largest float32 ≤ ``t``: for float32 x, ``x <= t`` (in double) iff ``x <= this``."""
    if t >= float(np.finfo(np.float32).max):
        return np.float32(np.finfo(np.float32).max) if t < np.inf else np.float32(np.inf)
    if t < -float(np.finfo(np.float32).max):
        return np.float32(-np.inf)
    t32 = np.float32(t)
    if float(t32) > t:
        t32 = np.nextafter(t32, np.float32(-np.inf))
    return t32


def goes_left(node: _Node, x: np.ndarray) -> np.ndarray:
    """LightGBM's Tree::Decision for float32 values ``x`` (magnitudes ≤ 1e-35 already 0)."""
    if node.categorical:
        # static_cast<int> truncates toward zero; NaN and negative categories go right
        inside = (x > -1) & (x < len(node.categories))
        out = np.zeros(len(x), dtype=bool)
        out[inside] = node.categories[x[inside].astype(np.int64)]
        return out
    le = x <= node.threshold  # NaN compares False
    if node.missing_type == "NaN":
        return le | np.isnan(x) if node.default_left else le
    if node.missing_type == "Zero":  # NaN reads as 0, and 0 takes the default direction
        zero = (x == 0) | np.isnan(x)
        return (le | zero) if node.default_left else (le & ~zero)
    return le | np.isnan(x) if node.threshold >= 0 else le  # None: NaN reads as 0


class _Group:
    """Leaves below one node: the nodes their share depends on, and a table of shares per code."""

    def __init__(self, tree: "_Tree", subtree: list[int], ancestors: list[int], leaves: list[int]):
        self.tree = tree
        # bit b of a code: the direction at nodes[b]; the subtree's nodes are consecutive in the
        # tree's (preorder) numbering, so their bits come out of the tree's route code in one shift
        self.start, self.size = (subtree[0], len(subtree)) if subtree else (0, 0)
        assert subtree == list(range(self.start, self.start + self.size))
        self.ancestors = ancestors
        self.nodes = subtree + ancestors
        self.leaves = leaves
        self.features = np.array(sorted({tree.nodes[i].feature for i in self.nodes}), dtype=np.intp)
        bits = len(self.nodes)
        if bits > 64:
            raise _Unsupported(f"a path of {bits} nodes")
        self.dtype = np.uint8 if bits <= 8 else np.uint16 if bits <= 16 else np.uint32 if bits <= 32 else np.uint64
        self.slot = np.full(1 << bits, -1, np.int32) if bits <= 16 else None  # code → slot, small codes
        self.known = np.zeros(0, self.dtype)  # sorted codes with a slot, wide codes
        self.known_slot = np.zeros(0, np.int32)
        self.values = np.zeros((len(self.features), 0))  # (features, slots)
        self.margin = np.zeros(0)  # per slot: the leaf value when the code ends in this group, else 0

    def codes(self, go: np.ndarray | None, route: np.ndarray | None) -> np.ndarray:
        """Every row's code, from the tree's route code when it has one (≤ 64 nodes), else from
        the (nodes, rows) directions ``go``."""
        dt = self.dtype
        if route is None:
            code = np.zeros(go.shape[1], dt)
            for b, i in enumerate(self.nodes):
                code |= go[i].astype(dt) << dt(b)
            return code
        rt = route.dtype.type
        if self.size:
            code = ((route >> rt(self.start)) & rt((1 << self.size) - 1)).astype(dt)
        else:
            code = np.zeros(len(route), dt)
        for k, a in enumerate(self.ancestors):
            code |= ((route >> rt(a)) & rt(1)).astype(dt) << dt(self.size + k)
        return code

    def slots(self, code: np.ndarray, rows: np.ndarray, go, route, fetch, lock) -> np.ndarray:
        """Table slot of every row's code; codes seen for the first time get a share from ``fetch``
        and the value of the leaf they end in (0 when that leaf is outside the group)."""
        slot = self._lookup(code)
        new = slot < 0
        if new.any():
            with lock:
                slot = self._lookup(code)  # another thread may have added them meanwhile
                new = slot < 0
                if new.any():
                    fresh, first = np.unique(code[new], return_index=True)
                    local = np.flatnonzero(new)[first]
                    leaves = self.tree.leaves(None if go is None else go[:, local],
                                              None if route is None else route[local], len(local))
                    margin = np.where(np.isin(leaves, self.leaves), self.tree.leaf_values[leaves], 0.0)
                    self._add(fresh, fetch(self, rows[local]), margin)
                    slot = self._lookup(code)
        return slot

    def _lookup(self, code: np.ndarray) -> np.ndarray:
        if self.slot is not None:
            return self.slot[code]
        if not len(self.known):
            return np.full(len(code), -1, np.int32)
        pos = np.minimum(np.searchsorted(self.known, code), len(self.known) - 1)
        return np.where(self.known[pos] == code, self.known_slot[pos], -1)

    def _add(self, fresh: np.ndarray, contrib: np.ndarray, margin: np.ndarray) -> None:
        """New codes, their representatives' contributions (rows × all features + bias) and
        margins."""
        start = self.values.shape[1]
        slots = np.arange(start, start + len(fresh), dtype=np.int32)
        self.values = np.concatenate([self.values, contrib[:, self.features].T], axis=1)  # before the slots
        self.margin = np.concatenate([self.margin, margin])
        if self.slot is not None:
            self.slot[fresh] = slots
        else:
            known = np.concatenate([self.known, fresh])
            order = np.argsort(known, kind="stable")
            self.known, self.known_slot = known[order], np.concatenate([self.known_slot, slots])[order]


class _Tree:
    """One tree's internal nodes and its groups of leaves."""

    def __init__(self, iteration: int, structure: dict, group_bits: int):
        self.iteration = iteration
        self.nodes: list[_Node] = []
        self.leaf_count = 0
        self._read(structure)
        count = len(self.nodes)
        self.route_dtype = (np.uint8 if count <= 8 else np.uint16 if count <= 16 else
                            np.uint32 if count <= 32 else np.uint64)
        self.groups: list[_Group] = []
        if self.nodes:
            self._group(0, [], group_bits)

    def _read(self, node: dict) -> int:
        if "split_index" not in node:  # a leaf (or a tree with one leaf)
            if "leaf_coeff" in node:
                raise _Unsupported("linear trees")
            self.leaf_count += 1
            return ~int(node.get("leaf_index", 0))
        if node["decision_type"] not in ("<=", "=="):
            raise _Unsupported(f"decision type {node['decision_type']!r}")
        categorical = node["decision_type"] == "=="
        categories = None
        threshold = np.float32(0)
        if categorical:
            cats = [int(c) for c in str(node["threshold"]).split("||") if c != ""]
            categories = np.zeros(max(cats, default=-1) + 1, dtype=bool)
            categories[cats] = True
        else:
            threshold = _float32_at_most(float(node["threshold"]))
        index = len(self.nodes)
        self.nodes.append(_Node(int(node["split_feature"]), categorical, threshold, categories,
                                bool(node["default_left"]), str(node["missing_type"])))
        self.nodes[index].left = self._read(node["left_child"])
        self.nodes[index].right = self._read(node["right_child"])
        return index

    def _below(self, child: int) -> tuple[list[int], list[int]]:
        """Internal nodes and leaves of the subtree at ``child`` (a node index or ~leaf)."""
        if child < 0:
            return [], [~child]
        nodes, leaves = [child], []
        for c in (self.nodes[child].left, self.nodes[child].right):
            n, lv = self._below(c)
            nodes += n
            leaves += lv
        return nodes, leaves

    def _group(self, child: int, ancestors: list[int], bits: int) -> None:
        nodes, leaves = self._below(child)
        if child < 0 or len(ancestors) + len(nodes) <= bits:
            self.groups.append(_Group(self, nodes, ancestors, leaves))
            return
        for c in (self.nodes[child].left, self.nodes[child].right):
            self._group(c, ancestors + [child], bits)

    @property
    def wide(self) -> bool:
        """More nodes than a 64-bit route code holds: directions are kept per node instead."""
        return len(self.nodes) > 64

    def tabulate(self, binning: "_Binning") -> None:
        """Per feature the tree splits on: bin → the route bits of its nodes on that feature."""
        dt = self.route_dtype
        self.tables: list[tuple[int, np.ndarray]] = []
        for f in sorted({node.feature for node in self.nodes}):
            table = np.zeros(binning.count(f), dt)
            for i, node in enumerate(self.nodes):
                if node.feature == f:
                    table |= goes_left(node, binning.values[f]).astype(dt) << dt(i)
            self.tables.append((f, table))

    def route(self, bins: dict[int, np.ndarray], columns: dict[int, np.ndarray],
              n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(directions, route code): the route code (bit i: node i goes left) from one table
        lookup per feature; a wide tree's (nodes, rows) directions one node at a time instead."""
        if self.wide:
            go = np.empty((len(self.nodes), n), dtype=bool)
            for i, node in enumerate(self.nodes):
                go[i] = goes_left(node, columns[node.feature])
            return go, None
        (f, table), *rest = self.tables
        route = table.take(bins[f])
        for f, table in rest:
            route |= table.take(bins[f])
        return None, route

    def leaves(self, go: np.ndarray | None, route: np.ndarray | None, n: int) -> np.ndarray:
        """The leaf every row ends in, from its directions or its route code."""
        node = np.zeros(n, dtype=np.int64)
        if not self.nodes:
            return node
        lefts = np.array([nd.left for nd in self.nodes])
        rights = np.array([nd.right for nd in self.nodes])
        rows = np.arange(n)
        active = node >= 0
        while active.any():
            r = rows[active]
            i = node[r]
            left = go[i, r] if route is None else ((route[r] >> i.astype(route.dtype)) & 1).astype(bool)
            node[r] = np.where(left, lefts[i], rights[i])
            active = node >= 0
        return ~node


class _Binning:
    """Per feature, bins on which every node's decision is constant, and one value of each bin.

    Numerical: the distinct thresholds t₀ < … < tₘ₋₁ of all the feature's nodes (float32, see
    ``_float32_at_most``) make bins (tₖ₋₁, tₖ], then one above all thresholds and one for NaN;
    with a ``Zero`` missing type, 0 gets a bin of its own, (the float32 below 0, 0]. A node's
    decision ``x <= t`` is the same for every x of a bin, so it is evaluated on tₖ (the bin's own
    upper end). Categorical: bin = the truncated category (LightGBM's ``static_cast<int>``) below
    the largest bitset, one bin for every other value (right at every node), one for NaN.
    """

    def __init__(self, trees: list[_Tree]):
        nodes: dict[int, list[_Node]] = {}
        for tree in trees:
            for node in tree.nodes:
                nodes.setdefault(node.feature, []).append(node)
        self.edges: dict[int, np.ndarray] = {}  # numerical: the bins' upper ends
        self.levels: dict[int, int] = {}  # categorical: categories with a bin of their own
        self.values: dict[int, np.ndarray] = {}  # one float32 value per bin
        for f, group in nodes.items():
            if any(node.categorical for node in group):
                if not all(node.categorical for node in group):
                    raise _Unsupported(f"feature {f} split both as categorical and numerical")
                levels = max(len(node.categories) for node in group)
                self.levels[f] = levels
                self.values[f] = np.append(np.arange(levels + 1, dtype=np.float32), np.float32(np.nan))
            else:
                edges = {node.threshold for node in group}
                if any(node.missing_type == "Zero" for node in group):
                    edges |= {np.float32(0), np.nextafter(np.float32(0), np.float32(-np.inf))}
                edges = np.array(sorted(edges), dtype=np.float32)
                self.edges[f] = edges
                self.values[f] = np.append(edges, np.array([np.inf, np.nan], dtype=np.float32))

    def count(self, f: int) -> int:
        return len(self.values[f])

    def of(self, f: int, x: np.ndarray) -> np.ndarray:
        """Every value's bin (float32 values, magnitudes ≤ 1e-35 already 0)."""
        nan = np.isnan(x)
        if f in self.edges:
            bins = np.searchsorted(self.edges[f], x, side="left")
            last = len(self.edges[f]) + 1
        else:
            last = self.levels[f] + 1
            bins = np.trunc(np.clip(np.where(nan, 0, x), -1, last - 1)).astype(np.intp)
            bins[bins < 0] = last - 1
        bins[nan] = last
        return bins


class _Shares:
    """LightGBM's own TreeSHAP for one group of one tree, on a booster copy with other leaves at 0."""

    def __init__(self, booster, iterations: int, trees: list[_Tree], X: np.ndarray):
        self.booster = booster
        self.X = X
        self.copy = None
        self.masked: dict[int, frozenset] = {}  # tree → leaves currently kept (absent: all)
        self.calls = 0
        self.rows = 0
        if any(len(t.groups) > 1 for t in trees):
            import lightgbm as lgb

            self.copy = lgb.Booster(model_str=booster.model_to_string(num_iteration=iterations))

    def __call__(self, group: _Group, rows: np.ndarray) -> np.ndarray:
        tree = group.tree
        self.calls += 1
        self.rows += len(rows)
        if len(tree.groups) == 1:
            return self.booster.predict(self.X[rows], start_iteration=tree.iteration, num_iteration=1,
                                        pred_contrib=True, num_threads=self._threads(rows))
        keep = frozenset(group.leaves)
        if self.masked.get(tree.iteration) != keep:
            for leaf, value in enumerate(tree.leaf_values.tolist()):
                self.copy.set_leaf_output(tree.iteration, leaf, value if leaf in keep else 0.0)
            self.masked[tree.iteration] = keep
        return self.copy.predict(self.X[rows], start_iteration=tree.iteration, num_iteration=1,
                                 pred_contrib=True, num_threads=self._threads(rows))

    @staticmethod
    def _threads(rows: np.ndarray) -> int:
        # OpenMP's start-up per call outweighs a small batch (and spinning threads fight on a
        # loaded machine): one thread unless the batch is large
        return 1 if len(rows) < PARALLEL_ROWS else 0


def _iterations(booster, num_iteration: int | None) -> int:
    """How many iterations ``booster.predict(num_iteration=...)`` uses, from the first."""
    total = booster.current_iteration()
    if num_iteration is None:
        num_iteration = booster.best_iteration
    if num_iteration is None or num_iteration <= 0:
        return total
    return min(int(num_iteration), total)


def _unsupported(dump: dict) -> str | None:
    """Why this model needs the plain fallback (None when the fast path applies)."""
    if dump.get("num_tree_per_iteration", 1) != 1 or dump.get("num_class", 1) != 1:
        return "more than one tree per iteration"
    if dump.get("average_output"):
        return "averaged output (random forest)"
    return None


def _prepared(x: np.ndarray) -> np.ndarray:
    """One feature's values as LightGBM's dense row parser reads them: float32, contiguous,
    magnitudes ≤ 1e-35 read as 0 (a copy: the caller's matrix is left alone)."""
    x = np.array(x, dtype=np.float32)
    x[np.abs(x) <= K_ZERO_THRESHOLD] = 0
    return x


def pred_contrib(booster, X: np.ndarray, num_iteration: int | None = None, **options) -> np.ndarray:
    """Per-feature contributions to the raw margin, equal to
    ``booster.predict(X, num_iteration=num_iteration, pred_contrib=True)[:, :-1]``."""
    return explain(booster, X, num_iteration, **options)[0]


def explain(booster, X: np.ndarray, num_iteration: int | None = None, *,
            threads: int = 2, check_rows: int = CHECK_ROWS, chunk_rows: int = CHUNK_ROWS,
            group_bits: int = GROUP_BITS, stats: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(contributions, margin): per-feature contributions to the raw margin, equal to
    ``booster.predict(X, num_iteration=num_iteration, pred_contrib=True)[:, :-1]``, and the raw
    margin, identical to ``booster.predict(X, num_iteration=num_iteration, raw_score=True)``.

    The contributions are an (n, features) float64 array: the transposed view of a feature-major
    array."""
    n, n_features = X.shape
    iterations = _iterations(booster, num_iteration)

    def plain(why: str) -> tuple[np.ndarray, np.ndarray]:
        log.warning("contributions: plain pred_contrib (%s)", why)
        if stats is not None:
            stats["fallback"] = why
        return (booster.predict(X, num_iteration=num_iteration, pred_contrib=True)[:, :-1],
                booster.predict(X, num_iteration=num_iteration, raw_score=True))

    if n == 0:
        return np.zeros((0, n_features)), np.zeros(0)
    dump = booster.dump_model(num_iteration=iterations)
    why = _unsupported(dump)
    if why:
        return plain(why)
    X = np.asarray(X, dtype=np.float32)
    try:
        every = [_Tree(i, info["tree_structure"], group_bits) for i, info in enumerate(dump["tree_info"][:iterations])]
        trees = [t for t in every if t.nodes]
        binning = _Binning(trees)
        for tree in every:
            tree.leaf_values = np.array([booster.get_leaf_output(tree.iteration, leaf)
                                         for leaf in range(tree.leaf_count)])
            if not tree.wide:
                tree.tabulate(binning)
        _check_routing(booster, trees, binning, X, iterations, check_rows)
    except (RoutingMismatch, _Unsupported) as err:
        return plain(str(err))

    shares = _Shares(booster, iterations, trees, X)
    used = sorted({node.feature for t in trees for node in t.nodes})
    out = np.zeros((n_features + 1, n), dtype=np.float64)  # the last row: the margin
    lock = threading.Lock()

    def chunk(start: int) -> None:
        stop = min(start + chunk_rows, n)
        block = X[start:stop]
        columns = {f: _prepared(block[:, f]) for f in used}
        bins = {f: binning.of(f, x) for f, x in columns.items()}
        rows = np.arange(start, stop)
        acc = out[:, start:stop]
        margin = acc[n_features]
        for tree in every:  # in tree order, so the margin sums as LightGBM's does
            if not tree.nodes:
                margin += tree.leaf_values[0]
                continue
            go, route = tree.route(bins, columns, stop - start)
            for group in tree.groups:
                slot = group.slots(group.codes(go, route), rows, go, route, shares, lock)
                values = group.values
                for j, f in enumerate(group.features):
                    acc[f] += values[j].take(slot)
                margin += group.margin.take(slot)  # the row's leaf in one group, 0 in the others

    starts = list(range(0, n, chunk_rows))
    chunk(starts[0])  # the first chunk alone: it meets most codes, the others mostly look up
    if len(starts) > 1:
        with ThreadPoolExecutor(max(1, threads)) as pool:
            list(pool.map(chunk, starts[1:]))
    if stats is not None:
        stats.update(trees=len(trees), groups=sum(len(t.groups) for t in trees),
                     lightgbm_calls=shares.calls, representatives=shares.rows)
    return out[:n_features].T, out[n_features]


def _check_routing(booster, trees: list[_Tree], binning: _Binning, X: np.ndarray, iterations: int,
                   check_rows: int) -> None:
    """Leaves implied by the reproduced routing (bins and tables, as ``explain`` routes) ==
    LightGBM's pred_leaf, on a sample of rows."""
    n = len(X)
    if n <= check_rows:
        sample = np.arange(n)
    else:
        sample = np.unique(np.concatenate([np.arange(256),
                                           np.random.default_rng(0).choice(n, check_rows, replace=False)]))
    block = X[sample]
    columns = {node.feature: _prepared(block[:, node.feature]) for t in trees for node in t.nodes}
    bins = {f: binning.of(f, x) for f, x in columns.items()}
    expected = np.asarray(booster.predict(block, num_iteration=iterations, pred_leaf=True)).reshape(len(sample), -1)
    for tree in trees:
        leaves = tree.leaves(*tree.route(bins, columns, len(sample)), len(sample))
        if not np.array_equal(leaves, expected[:, tree.iteration]):
            bad = int(np.flatnonzero(leaves != expected[:, tree.iteration])[0])
            raise RoutingMismatch(f"tree {tree.iteration} routes row {int(sample[bad])} differently")
