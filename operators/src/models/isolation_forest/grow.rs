//! Growing one isolation tree into a forest's node array: sampling, choosing cuts (axis-parallel
//! or hyperplane) and partitioning the sample in place, depth-first with an explicit stack so
//! that no input can exhaust the call stack.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{average_path_length, dot, IsolationForest, Node, Tree};
use crate::models::ModelError;

/// A node waiting to be split: its rows are `order[lo..hi]`.
struct Pending {
    node: u32,
    lo: usize,
    hi: usize,
    depth: usize,
}

/// How a node was cut: rows `order[lo..mid]` go left, `order[mid..hi]` right.
struct Split {
    feature: u32,
    cut: f32,
    mid: usize,
}

/// Scratch space for growing trees, reused across the trees of a forest.
pub(super) struct Grower {
    sample_size: usize,
    n_features: usize,
    max_depth: usize,
    terms: usize,
    /// The current tree's sample, column-major (feature `f` is `cols[f * ψ..(f + 1) * ψ]`) so
    /// that scanning one feature over a node's rows reads one column.
    cols: Vec<f32>,
    /// Sample row ids, partitioned in place so that each node owns a contiguous range.
    order: Vec<u32>,
    /// Feature ids in the order axis splits try them.
    features: Vec<u32>,
    /// Non-constant features of the node being cut by a hyperplane, with their ranges.
    ranges: Vec<(u32, f32, f32)>,
    stack: Vec<Pending>,
}

impl Grower {
    pub(super) fn new(
        sample_size: usize,
        n_features: usize,
        max_depth: usize,
        terms: usize,
    ) -> Self {
        Self {
            sample_size,
            n_features,
            max_depth,
            terms,
            cols: vec![0.0; sample_size * n_features],
            order: Vec::with_capacity(sample_size),
            features: Vec::with_capacity(n_features),
            ranges: Vec::with_capacity(n_features),
            stack: Vec::new(),
        }
    }

    pub(super) fn load_sample(&mut self, rows: &[f32], n_rows: usize, rng: &mut ChaCha8Rng) {
        let (psi, d) = (self.sample_size, self.n_features);
        let picked = rand::seq::index::sample(rng, n_rows, psi);
        for (k, r) in picked.iter().enumerate() {
            for (j, &v) in rows[r * d..(r + 1) * d].iter().enumerate() {
                self.cols[j * psi + k] = v;
            }
        }
        self.order.clear();
        self.order.extend(0..psi as u32);
        self.features.clear();
        self.features.extend(0..d as u32);
    }

    pub(super) fn grow(
        &mut self,
        rng: &mut ChaCha8Rng,
        forest: &mut IsolationForest,
    ) -> Result<Tree, ModelError> {
        let root = forest.push_node()?;
        self.stack.clear();
        self.stack.push(Pending {
            node: root,
            lo: 0,
            hi: self.sample_size,
            depth: 0,
        });
        let mut deepest = 0;
        while let Some(p) = self.stack.pop() {
            let split = if p.hi - p.lo >= 2 && p.depth < self.max_depth {
                if self.terms == 0 {
                    self.axis_split(rng, p.lo, p.hi)
                } else {
                    let terms = p.node as usize * self.terms..(p.node as usize + 1) * self.terms;
                    self.hyperplane_split(
                        rng,
                        p.lo,
                        p.hi,
                        &mut forest.term_features[terms.clone()],
                        &mut forest.term_coefs[terms],
                    )
                }
            } else {
                None
            };
            let Some(split) = split else {
                let path = p.depth as f64 + average_path_length(p.hi - p.lo);
                forest.nodes[p.node as usize] = Node::leaf(p.node, path as f32);
                deepest = deepest.max(p.depth);
                continue;
            };
            let left = forest.push_node()?;
            let right = forest.push_node()?; // always `left + 1`
            forest.nodes[p.node as usize] = Node {
                cut: split.cut,
                feature: split.feature,
                left,
                path: 0.0,
            };
            // Left is popped first, so a subtree's nodes are mostly contiguous.
            self.stack.push(Pending {
                node: right,
                lo: split.mid,
                hi: p.hi,
                depth: p.depth + 1,
            });
            self.stack.push(Pending {
                node: left,
                lo: p.lo,
                hi: split.mid,
                depth: p.depth + 1,
            });
        }
        Ok(Tree {
            root,
            // `deepest <= max_depth <= MAX_DEPTH_LIMIT`.
            depth: deepest as u32,
        })
    }

    /// Cuts on a feature drawn uniformly among those not constant on the node, at a threshold
    /// drawn uniformly in its range: the distribution of scikit-learn's random splitter, which
    /// redraws when the drawn feature is constant. `None` when every feature is constant.
    fn axis_split(&mut self, rng: &mut ChaCha8Rng, lo: usize, hi: usize) -> Option<Split> {
        let (psi, d) = (self.sample_size, self.n_features);
        // A lazy Fisher–Yates shuffle: trying features in a uniformly random order and taking the
        // first non-constant one is a uniform draw among the non-constant ones.
        for j in 0..d {
            let k = rng.random_range(j..d);
            self.features.swap(j, k);
            let f = self.features[j] as usize;
            let col = &self.cols[f * psi..(f + 1) * psi];
            let (min, max) = min_max(self.order[lo..hi].iter().map(|&r| col[r as usize]));
            if min < max {
                let u: f64 = rng.random();
                let mut cut = (f64::from(min) + u * (f64::from(max) - f64::from(min))) as f32;
                if cut >= max {
                    // Rounding reached the maximum, which would send every row left; scikit-learn
                    // falls back to the minimum in the same case.
                    cut = min;
                }
                let mid = lo + partition(&mut self.order[lo..hi], |r| col[r] > cut);
                return Some(Split {
                    feature: f as u32,
                    cut,
                    mid,
                });
            }
        }
        None
    }

    /// Cuts with a random hyperplane through a uniform point of the node's bounding box
    /// (Hariri et al. 2021, algorithm 2), writing its terms into `features`/`coefs`. `None` when
    /// every feature is constant on the node.
    fn hyperplane_split(
        &mut self,
        rng: &mut ChaCha8Rng,
        lo: usize,
        hi: usize,
        features: &mut [u32],
        coefs: &mut [f32],
    ) -> Option<Split> {
        let psi = self.sample_size;
        let order = &self.order[lo..hi];
        self.ranges.clear();
        for (f, col) in self.cols.chunks_exact(psi).enumerate() {
            let (min, max) = min_max(order.iter().map(|&r| col[r as usize]));
            if min < max {
                self.ranges.push((f as u32, min, max));
            }
        }
        if self.ranges.is_empty() {
            return None;
        }
        // Terms on constant features would not change which rows are cut apart, so the
        // `extension_level + 1` active dimensions are drawn among the non-constant ones; with
        // fewer of those, the remaining terms stay zero.
        let mut offset = 0.0f64;
        for j in 0..self.terms.min(self.ranges.len()) {
            let k = rng.random_range(j..self.ranges.len());
            self.ranges.swap(j, k);
            let (f, min, max) = self.ranges[j];
            let coef = standard_normal(rng) as f32;
            let u: f64 = rng.random();
            let intercept = f64::from(min) + u * (f64::from(max) - f64::from(min));
            offset += f64::from(coef) * intercept;
            features[j] = f;
            coefs[j] = coef;
        }
        // Clamped so that huge inputs give a finite cut (serialisable; JSON has no infinity).
        let cut = offset.clamp(f64::from(f32::MIN), f64::from(f32::MAX)) as f32;
        let cols = &self.cols;
        let mid = lo
            + partition(&mut self.order[lo..hi], |r| {
                dot(features, coefs, |f| cols[f * psi + r]) > cut
            });
        Some(Split {
            feature: 0,
            cut,
            mid,
        })
    }
}

fn min_max(values: impl Iterator<Item = f32>) -> (f32, f32) {
    values.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

/// Moves the row ids that go left to the front; returns how many there are.
fn partition(order: &mut [u32], goes_right: impl Fn(usize) -> bool) -> usize {
    let mut left = 0;
    for i in 0..order.len() {
        if !goes_right(order[i] as usize) {
            order.swap(left, i);
            left += 1;
        }
    }
    left
}

/// A standard normal draw (Box–Muller). `1 − u` keeps the logarithm's argument in (0, 1].
pub(super) fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
