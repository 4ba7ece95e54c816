//! Checkpoint form of a fitted [`IsolationForest`]: how nodes are written, and the checks a
//! deserialised forest passes before it can be scored. Scoring reads nodes without bounds checks,
//! so every index a checkpoint carries is verified here.

use serde::{Deserialize, Serialize};

use super::{invalid, ForestVariant, IsolationForest, Node, Tree, MAX_DEPTH_LIMIT};
use crate::models::ModelError;

/// How a node is stored: the NaN cut and self-index of a leaf are implied, since JSON has no NaN.
#[derive(Serialize, Deserialize)]
pub(super) enum NodeRepr {
    /// Path length.
    Leaf(f32),
    /// Feature, cut, left child.
    Split(u32, f32, u32),
}

impl From<Node> for NodeRepr {
    fn from(node: Node) -> Self {
        if node.cut.is_nan() {
            Self::Leaf(node.path)
        } else {
            Self::Split(node.feature, node.cut, node.left)
        }
    }
}

/// The serialised fields of [`IsolationForest`], checked before they become one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ForestParts {
    n_features: usize,
    sample_size: usize,
    variant: ForestVariant,
    trees: Vec<Tree>,
    nodes: Vec<NodeRepr>,
    terms_per_node: usize,
    term_features: Vec<u32>,
    term_coefs: Vec<f32>,
}

impl TryFrom<ForestParts> for IsolationForest {
    type Error = ModelError;

    fn try_from(p: ForestParts) -> Result<Self, ModelError> {
        let bad =
            |reason: &str| invalid("model", format!("inconsistent isolation forest: {reason}"));
        if p.n_features == 0 || p.sample_size == 0 || p.trees.is_empty() {
            return Err(bad("empty forest"));
        }
        // `fit` refuses wider rows; a checkpoint claiming more is damaged.
        if u32::try_from(p.n_features).is_err() {
            return Err(bad("feature count"));
        }
        let expected_terms = match p.variant {
            ForestVariant::Standard => 0,
            ForestVariant::Extended { extension_level } if extension_level < p.n_features => {
                extension_level + 1
            }
            ForestVariant::Extended { .. } => return Err(bad("extension level")),
        };
        let n_nodes = p.nodes.len();
        let n_terms = n_nodes.checked_mul(expected_terms);
        if p.terms_per_node != expected_terms
            || Some(p.term_features.len()) != n_terms
            || Some(p.term_coefs.len()) != n_terms
        {
            return Err(bad("hyperplane terms"));
        }
        let in_nodes = |i: u32| (i as usize) < n_nodes;
        let mut nodes = Vec::with_capacity(n_nodes);
        for (index, node) in p.nodes.into_iter().enumerate() {
            nodes.push(match node {
                NodeRepr::Leaf(path) if path.is_finite() => Node::leaf(index as u32, path),
                NodeRepr::Split(feature, cut, left)
                    if !cut.is_nan()
                        && (feature as usize) < p.n_features
                        && in_nodes(left.saturating_add(1)) =>
                {
                    Node {
                        cut,
                        feature,
                        left,
                        path: 0.0,
                    }
                }
                _ => return Err(bad("node")),
            });
        }
        if !p.term_features.iter().all(|&f| (f as usize) < p.n_features) {
            return Err(bad("feature index"));
        }
        if !p
            .trees
            .iter()
            .all(|t| in_nodes(t.root) && t.depth as usize <= MAX_DEPTH_LIMIT)
        {
            return Err(bad("tree root or depth"));
        }
        Ok(Self {
            n_features: p.n_features,
            sample_size: p.sample_size,
            variant: p.variant,
            trees: p.trees,
            nodes,
            terms_per_node: p.terms_per_node,
            term_features: p.term_features,
            term_coefs: p.term_coefs,
        })
    }
}
