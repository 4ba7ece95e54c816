//! Isolation forests: unsupervised anomaly scores for the rows of a feature matrix.
//!
//! Two variants share one fitted representation:
//! * **standard**: axis-parallel cuts (Liu, Ting & Zhou, "Isolation Forest", ICDM 2008), with the
//!   parameters, path length and score of scikit-learn's `IsolationForest`;
//! * **extended**: random-hyperplane cuts (Hariri, Carrasco Kind & Brunner, "Extended Isolation
//!   Forest", IEEE TKDE 33(4), 2021), which removes the axis-aligned bands of falsely low scores
//!   that standard trees leave around rotated or curved clusters.
//!
//! A tree is grown on `ψ = min(sample_size, rows)` rows drawn without replacement; a node becomes a
//! leaf when it holds fewer than two rows, reaches `max_depth`, or cannot be cut because all its
//! rows are equal on every feature. The path length of a row is `h(x) = depth of its leaf + c(n)`,
//! `n` being the number of training rows in that leaf, and the score is
//! `s(x) = 2^(−E[h(x)] / c(ψ))`, in (0, 1], where higher means more anomalous.
//!
//! The layout is chosen for scoring speed:
//! * all trees of a forest live in one contiguous node array, and a split's two children are
//!   adjacent, so the next node is `left + (x > cut)`;
//! * a leaf's cut is NaN and its left child is itself, so a row that reaches a leaf early stays
//!   there. Every row then takes exactly `depth` steps in a tree, and a block of rows walks a tree
//!   in lockstep: each step is a few loads, a compare and an add with no data-dependent branch,
//!   and the rows of a block are independent dependency chains the CPU overlaps instead of waiting
//!   on one load at a time;
//! * features are f32 (half the memory traffic of f64); path lengths are summed in f64;
//! * that loop reads nodes and row values without bounds checks, which measured ~30% of scoring
//!   time. The indices it trusts are produced by `grow` and re-checked when a forest is
//!   deserialised (`checkpoint`), so no input, including a damaged checkpoint, reaches it unchecked.
//!
//! Scoring never fails. A NaN feature compares false with every cut, so it takes the branch that
//! `x <= cut` takes (the left one); ±∞ take the side their sign gives, and a hyperplane whose
//! product is NaN (∞·0, ∞−∞) also goes left. A row shorter than the fitted width is padded with
//! NaN; values past the fitted width are ignored.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::models::ModelError;

mod checkpoint;
mod grow;
#[cfg(test)]
mod tests;

use grow::Grower;

/// Euler–Mascheroni constant γ, for the harmonic number approximation H(i) ≈ ln(i) + γ that
/// Liu et al. (2008) and scikit-learn use in c(n).
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// Largest accepted `max_depth`. Every scored row takes `depth` steps in every tree, so deeper
/// limits only cost time; 64 levels already exceed ⌈log2 ψ⌉ for any sample that fits in memory.
pub const MAX_DEPTH_LIMIT: usize = 64;

/// Rows that walk a tree together: enough independent chains to keep the load ports busy, few
/// enough that the block (32 × 19 f32 features ≈ 2.4 KB) and its node indices stay in L1. Picked
/// with `benches/isolation_forest.rs` on the 2-core dev machine: 32 rows scored ~1.4–1.5 M rows/s,
/// 16 and 64 ~10% less, 8 and 128 ~20% less.
const BLOCK_ROWS: usize = 32;
/// Trees one row walks in lockstep when it is scored alone (see `walk_one`).
const TREE_LANES: usize = 25;

/// The average path length of an unsuccessful search in a binary search tree of `n` keys, c(n),
/// which normalises isolation depths: `c(n) = 2 H(n−1) − 2 (n−1)/n` with
/// `H(i) ≈ ln(i) + γ`, and c(0) = c(1) = 0, c(2) = 1 (as scikit-learn defines it).
pub fn average_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
        }
    }
}

/// How the trees cut the feature space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ForestVariant {
    /// Axis-parallel cuts on one random feature, as Liu et al. (2008) and scikit-learn.
    #[default]
    Standard,
    /// Random-hyperplane cuts (Hariri et al. 2021). The hyperplane's normal has
    /// `extension_level + 1` non-zero standard-normal components on random features the node's
    /// rows are not constant on; it passes through a point drawn uniformly in the node's bounding
    /// box, so one side can be empty (that side becomes a leaf holding no rows, as in the paper).
    /// 0 cuts on one feature like the standard variant; `n_features − 1` is fully extended.
    Extended {
        /// Number of extra dimensions each hyperplane spans, in `0..n_features`.
        extension_level: usize,
    },
}

/// An unfitted isolation forest: what to grow and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IsolationForestConfig {
    /// Number of trees. Default 100 (scikit-learn's `n_estimators`); must be at least 1.
    pub n_trees: usize,
    /// Rows drawn without replacement to grow each tree (ψ), capped at the number of rows given to
    /// `fit`. Default 256 (Liu et al. 2008; scikit-learn's `max_samples="auto"`); at least 1.
    pub sample_size: usize,
    /// Depth limit of each tree; `None` (the default) means ⌈log2 max(ψ, 2)⌉ as scikit-learn.
    /// Must be in `1..=MAX_DEPTH_LIMIT`.
    pub max_depth: Option<usize>,
    /// Axis-parallel or hyperplane cuts. Default standard.
    pub variant: ForestVariant,
    /// Seed of the ChaCha8 generators; the same rows and seed give the same forest. Default 0.
    pub seed: u64,
}

impl Default for IsolationForestConfig {
    fn default() -> Self {
        Self {
            n_trees: 100,
            sample_size: 256,
            max_depth: None,
            variant: ForestVariant::Standard,
            seed: 0,
        }
    }
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ModelError {
    ModelError::InvalidParameter {
        name,
        reason: reason.into(),
    }
}

/// ⌈log2 max(ψ, 2)⌉, computed on integers so that powers of two are exact.
fn default_max_depth(sample_size: usize) -> usize {
    let m = sample_size.max(2);
    (usize::BITS - (m - 1).leading_zeros()) as usize
}

impl IsolationForestConfig {
    /// Checks the parameters that do not depend on the data (the extension level is checked
    /// against the width of the rows in [`fit`](Self::fit)).
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.n_trees == 0 {
            return Err(invalid("n_trees", "must be at least 1"));
        }
        if self.sample_size == 0 {
            return Err(invalid("sample_size", "must be at least 1"));
        }
        if let Some(depth) = self.max_depth {
            ModelError::require(
                (1..=MAX_DEPTH_LIMIT).contains(&depth),
                "max_depth",
                &format!("in 1..={MAX_DEPTH_LIMIT}"),
                depth as f64,
            )?;
        }
        Ok(())
    }

    /// Grows the forest on a row-major matrix of `rows.len() / n_features` rows.
    ///
    /// Errors: invalid parameters, `n_features == 0` or an extension level of `n_features` or
    /// more ([`ModelError::InvalidParameter`]); a length that is not a multiple of `n_features`
    /// ([`ModelError::WidthMismatch`], `got` being the width of the incomplete last row); no rows
    /// ([`ModelError::NotEnoughData`]); a NaN or infinite value ([`ModelError::NonFinite`]).
    pub fn fit(&self, rows: &[f32], n_features: usize) -> Result<IsolationForest, ModelError> {
        self.validate()?;
        if n_features == 0 {
            return Err(invalid("n_features", "must be at least 1"));
        }
        if u32::try_from(n_features).is_err() {
            return Err(invalid("n_features", "must fit in 32 bits"));
        }
        if !rows.len().is_multiple_of(n_features) {
            return Err(ModelError::WidthMismatch {
                expected: n_features,
                got: rows.len() % n_features,
            });
        }
        let n_rows = rows.len() / n_features;
        if n_rows == 0 {
            return Err(ModelError::NotEnoughData { needed: 1, got: 0 });
        }
        if let Some(index) = rows.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite { index });
        }
        let terms_per_node = match self.variant {
            ForestVariant::Standard => 0,
            ForestVariant::Extended { extension_level } => {
                if extension_level >= n_features {
                    return Err(invalid(
                        "extension_level",
                        format!("must be below n_features = {n_features}, got {extension_level}"),
                    ));
                }
                extension_level + 1
            }
        };
        let sample_size = self.sample_size.min(n_rows);
        if u32::try_from(sample_size).is_err() {
            return Err(invalid("sample_size", "must fit in 32 bits"));
        }
        let max_depth = self
            .max_depth
            .unwrap_or_else(|| default_max_depth(sample_size));

        let mut forest = IsolationForest {
            n_features,
            sample_size,
            variant: self.variant,
            trees: Vec::with_capacity(self.n_trees),
            nodes: Vec::new(),
            terms_per_node,
            term_features: Vec::new(),
            term_coefs: Vec::new(),
        };
        let mut grower = Grower::new(sample_size, n_features, max_depth, terms_per_node);
        for t in 0..self.n_trees {
            // One stream per tree: a tree depends only on (rows, seed, its index), so growing
            // trees in another order or in parallel cannot change the forest.
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
            rng.set_stream(t as u64);
            grower.load_sample(rows, n_rows, &mut rng);
            let tree = grower.grow(&mut rng, &mut forest)?;
            forest.trees.push(tree);
        }
        Ok(forest)
    }
}

/// One node of the forest's node array.
///
/// A split sends a row to `left + 1` when its value (or hyperplane product) is `> cut` and to
/// `left` otherwise. A leaf's `cut` is NaN, which compares false with every value, and its `left`
/// is its own index, so a row that reaches it stays.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(into = "checkpoint::NodeRepr")]
struct Node {
    cut: f32,
    /// Feature of an axis-parallel split; 0 for leaves and hyperplane splits.
    feature: u32,
    left: u32,
    /// A leaf's path length, `depth + c(rows in leaf)`; 0 for splits. f32 keeps the node at 16
    /// bytes; its ~1e-7 relative rounding moves a score by ~1e-8.
    path: f32,
}

/// Bitwise on `cut`, so that leaves (NaN cuts) compare equal to themselves.
impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        self.cut.to_bits() == other.cut.to_bits()
            && self.feature == other.feature
            && self.left == other.left
            && self.path == other.path
    }
}

impl Node {
    fn leaf(index: u32, path: f32) -> Self {
        Self {
            cut: f32::NAN,
            feature: 0,
            left: index,
            path,
        }
    }
}

/// Where a tree starts in the node array and how many steps reach its deepest leaf.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Tree {
    root: u32,
    depth: u32,
}

/// A fitted isolation forest. Serialisable so that it can be checkpointed; deserialising checks
/// every index, so a damaged checkpoint is an error, never a panic at scoring time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "checkpoint::ForestParts")]
pub struct IsolationForest {
    n_features: usize,
    /// ψ, the rows each tree was grown on; c(ψ) normalises the score.
    sample_size: usize,
    variant: ForestVariant,
    trees: Vec<Tree>,
    nodes: Vec<Node>,
    /// Hyperplane terms per node: `extension_level + 1`, or 0 for the standard variant. Node `i`'s
    /// terms are `term_features[i * k..(i + 1) * k]` with `term_coefs` alike (zeros for leaves).
    terms_per_node: usize,
    term_features: Vec<u32>,
    term_coefs: Vec<f32>,
}

/// `2^(−path_sum / normaliser)`: the score of a row whose path lengths over all trees sum to
/// `path_sum`.
fn score_from(path_sum: f64, normaliser: f64) -> f64 {
    if normaliser == 0.0 {
        // ψ = 1: every path is 0/0. scikit-learn defines the ratio as 1, i.e. a score of 0.5.
        return 0.5;
    }
    (-path_sum / normaliser).exp2()
}

/// How a row picks a child: implemented once per variant so that the lockstep walk is
/// monomorphised with the cut inlined.
trait Cuts {
    fn goes_right(&self, node_index: usize, node: &Node, row: &[f32]) -> bool;
}

struct AxisCuts;

impl Cuts for AxisCuts {
    #[inline(always)]
    fn goes_right(&self, _: usize, node: &Node, row: &[f32]) -> bool {
        debug_assert!((node.feature as usize) < row.len());
        // SAFETY: `row` is one whole row (`walk` hands out `chunks_exact(n_features)`), and every
        // node's `feature` is below `n_features`: `grow` draws features from `0..n_features`,
        // leaves hold 0, and deserialisation (`TryFrom<ForestParts>`) rejects any other value.
        unsafe { *row.get_unchecked(node.feature as usize) > node.cut }
    }
}

struct HyperplaneCuts<'a> {
    terms: usize,
    features: &'a [u32],
    coefs: &'a [f32],
}

impl Cuts for HyperplaneCuts<'_> {
    #[inline(always)]
    fn goes_right(&self, node_index: usize, node: &Node, row: &[f32]) -> bool {
        let terms = node_index * self.terms..(node_index + 1) * self.terms;
        dot(&self.features[terms.clone()], &self.coefs[terms], |f| {
            row[f]
        }) > node.cut
    }
}

/// The hyperplane product, in f32 and in term order. Growing and scoring both call this, so a
/// training row lands on the same side when it is scored as when it was partitioned.
#[inline(always)]
fn dot(features: &[u32], coefs: &[f32], value: impl Fn(usize) -> f32) -> f32 {
    features
        .iter()
        .zip(coefs)
        .fold(0.0f32, |acc, (&f, &c)| acc + c * value(f as usize))
}

impl IsolationForest {
    /// Width of the rows the forest was fitted on.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    /// ψ: the rows each tree was grown on (the configured sample size, capped at the row count).
    pub fn sample_size(&self) -> usize {
        self.sample_size
    }

    /// The variant the forest was grown with.
    pub fn variant(&self) -> ForestVariant {
        self.variant
    }

    /// Anomaly score of one row, in (0, 1]; higher is more anomalous, and scikit-learn's
    /// `score_samples` is its negation. See the module docs for NaN and short rows.
    pub fn score(&self, row: &[f32]) -> f64 {
        let d = self.n_features;
        let mut sum = [0.0];
        if row.len() >= d {
            self.path_sums(&row[..d], &mut sum);
        } else {
            let mut padded = vec![f32::NAN; d];
            padded[..row.len()].copy_from_slice(row);
            self.path_sums(&padded, &mut sum);
        }
        score_from(sum[0], self.normaliser())
    }

    /// Scores a row-major matrix: clears `out` and writes one score per row, in order. A trailing
    /// incomplete row is scored as [`score`](Self::score) scores a short row.
    pub fn score_batch(&self, rows: &[f32], out: &mut Vec<f64>) {
        let d = self.n_features;
        let complete = rows.len() / d;
        out.clear();
        out.resize(complete, 0.0);
        self.path_sums(&rows[..complete * d], out);
        let normaliser = self.normaliser();
        for s in out.iter_mut() {
            *s = score_from(*s, normaliser);
        }
        let rest = &rows[complete * d..];
        if !rest.is_empty() {
            out.push(self.score(rest));
        }
    }

    /// `n_trees · c(ψ)`, which turns a sum of path lengths into the exponent of the score.
    fn normaliser(&self) -> f64 {
        self.trees.len() as f64 * average_path_length(self.sample_size)
    }

    /// Adds each row's path lengths over all trees into `sums` (`rows.len() == sums.len() * d`).
    fn path_sums(&self, rows: &[f32], sums: &mut [f64]) {
        if self.terms_per_node == 0 {
            self.walk(&AxisCuts, rows, sums);
        } else {
            let cuts = HyperplaneCuts {
                terms: self.terms_per_node,
                features: &self.term_features,
                coefs: &self.term_coefs,
            };
            self.walk(&cuts, rows, sums);
        }
    }

    fn walk<C: Cuts>(&self, cuts: &C, rows: &[f32], sums: &mut [f64]) {
        if let [sum] = sums {
            *sum += self.walk_one(cuts, rows);
            return;
        }
        let d = self.n_features;
        let nodes = &self.nodes[..];
        let mut at = [0u32; BLOCK_ROWS];
        for (block, sums) in rows.chunks(BLOCK_ROWS * d).zip(sums.chunks_mut(BLOCK_ROWS)) {
            let at = &mut at[..sums.len()];
            for tree in &self.trees {
                at.fill(tree.root);
                for _ in 0..tree.depth {
                    for (i, row) in at.iter_mut().zip(block.chunks_exact(d)) {
                        debug_assert!((*i as usize) < nodes.len());
                        // SAFETY: `*i` starts at a tree root and then only takes values
                        // `left + (x > cut)` of the node it is at. Roots and the `left + 1` of
                        // every split are below `nodes.len()`, and a leaf's `left` is its own index
                        // with a NaN cut, against which every comparison is false. `grow` builds
                        // nodes that way and deserialisation rejects anything else.
                        let node = unsafe { nodes.get_unchecked(*i as usize) };
                        *i = node.left + u32::from(cuts.goes_right(*i as usize, node, row));
                    }
                }
                for (s, &i) in sums.iter_mut().zip(at.iter()) {
                    *s += f64::from(nodes[i as usize].path);
                }
            }
        }
    }

    /// One row's path lengths over all trees. A streaming detector scores one row on a forest
    /// that is cold in cache, so each step of a walk waits for memory; walking `TREE_LANES` trees
    /// in lockstep keeps that many loads in flight instead of one. Trees shallower than the
    /// deepest of their group stay on their leaf (see the SAFETY note in [`Self::walk`]). The
    /// sum is taken in tree order, as the batch walk takes it.
    fn walk_one<C: Cuts>(&self, cuts: &C, row: &[f32]) -> f64 {
        let nodes = &self.nodes[..];
        let mut sum = 0.0;
        for group in self.trees.chunks(TREE_LANES) {
            let mut at = [0u32; TREE_LANES];
            let at = &mut at[..group.len()];
            for (i, tree) in at.iter_mut().zip(group) {
                *i = tree.root;
            }
            let depth = group.iter().map(|t| t.depth).max().unwrap_or(0);
            for _ in 0..depth {
                for i in at.iter_mut() {
                    debug_assert!((*i as usize) < nodes.len());
                    // SAFETY: as in `walk`: `*i` starts at a root and only moves to a node's
                    // `left` or `left + 1`, both in bounds by construction and validation.
                    let node = unsafe { nodes.get_unchecked(*i as usize) };
                    *i = node.left + u32::from(cuts.goes_right(*i as usize, node, row));
                }
            }
            for &i in at.iter() {
                sum += f64::from(nodes[i as usize].path);
            }
        }
        sum
    }

    /// Appends a leaf placeholder (and its zero hyperplane terms) and returns its index.
    fn push_node(&mut self) -> Result<u32, ModelError> {
        let index = u32::try_from(self.nodes.len())
            .map_err(|_| invalid("n_trees", "the forest has more than 2^32 nodes"))?;
        self.nodes.push(Node::leaf(index, 0.0));
        let k = self.terms_per_node;
        self.term_features.resize(self.term_features.len() + k, 0);
        self.term_coefs.resize(self.term_coefs.len() + k, 0.0);
        Ok(index)
    }
}
