//! The simulated fleet: services in three tiers (user-facing edge, business services, backing
//! stores), who calls whom, and which host each runs on. Seeded, so a seed always gives the same
//! fleet.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Names for the first services, after a familiar microservice demo shop, so output reads like a
/// real fleet; larger fleets continue with `svc-<n>`.
const EDGE: &[&str] = &["front-end", "api-gateway"];
const BUSINESS: &[&str] = &[
    "orders",
    "carts",
    "catalogue",
    "user",
    "payment",
    "shipping",
    "recommender",
    "search",
    "inventory",
    "notifications",
];
const BACKING: &[&str] = &[
    "orders-db",
    "carts-db",
    "catalogue-db",
    "user-db",
    "queue",
    "session-cache",
];

/// Where a service sits in the call graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Receives user traffic.
    Edge,
    /// Business logic.
    Business,
    /// Databases, queues, caches.
    Backing,
}

/// One simulated service.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Service name (the `service` label).
    pub name: String,
    /// Host it runs on (the `host` label).
    pub host: String,
    /// Tier.
    pub tier: Tier,
    /// Indices of the services it calls.
    pub calls: Vec<usize>,
}

/// The fleet and its call graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    /// Services; every call goes from a lower to a higher index, so index order is topological
    /// (callers before callees).
    pub services: Vec<Service>,
}

impl Fleet {
    /// A fleet of `n` services (at least 3) from `seed`.
    pub fn generate(n: usize, seed: u64) -> Fleet {
        let n = n.max(3);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_F1EE);
        // Roughly 1 edge per 8 services, a quarter backing, the rest business.
        let edge = (n / 8).clamp(1, EDGE.len());
        let backing = (n / 4).max(1);
        let business = n - edge - backing;
        let mut names = Vec::with_capacity(n);
        let mut tiers = Vec::with_capacity(n);
        let mut extra = 0;
        let pick = |list: &[&str], i: usize, extra: &mut usize| {
            list.get(i).map(|s| s.to_string()).unwrap_or_else(|| {
                *extra += 1;
                format!("svc-{}", *extra)
            })
        };
        for i in 0..edge {
            names.push(pick(EDGE, i, &mut extra));
            tiers.push(Tier::Edge);
        }
        for i in 0..business {
            names.push(pick(BUSINESS, i, &mut extra));
            tiers.push(Tier::Business);
        }
        for i in 0..backing {
            names.push(pick(BACKING, i, &mut extra));
            tiers.push(Tier::Backing);
        }
        let business_range = edge..edge + business;
        let backing_range = edge + business..n;
        let mut calls: Vec<Vec<usize>> = vec![Vec::new(); n];
        // Edge services call up to five business services.
        for edge_calls in calls.iter_mut().take(edge) {
            let mut targets: Vec<usize> = business_range.clone().collect();
            targets.shuffle(&mut rng);
            targets.truncate(5.min(targets.len()).max(1));
            *edge_calls = targets;
        }
        // Business services call one or two backing stores and sometimes a later business service.
        for b in business_range.clone() {
            let mut targets: Vec<usize> = backing_range.clone().collect();
            targets.shuffle(&mut rng);
            targets.truncate(rng.random_range(1..=2).min(targets.len()));
            if b + 1 < business_range.end && rng.random_bool(0.35) {
                targets.push(rng.random_range(b + 1..business_range.end));
            }
            targets.sort_unstable();
            targets.dedup();
            calls[b] = targets;
        }
        // Every non-edge service needs a caller, or it would receive no traffic.
        for b in edge..n {
            if !calls.iter().any(|c| c.contains(&b)) {
                let caller = if b >= backing_range.start && business > 0 {
                    business_range.start + b % business
                } else {
                    b % edge
                };
                calls[caller].push(b);
                calls[caller].sort_unstable();
            }
        }
        // Hosts: about two services each, shuffled so co-location crosses tiers.
        let hosts = n.div_ceil(2);
        let mut host_of: Vec<usize> = (0..n).map(|i| i % hosts).collect();
        host_of.shuffle(&mut rng);
        let services = (0..n)
            .map(|i| Service {
                name: names[i].clone(),
                host: format!("host-{}", host_of[i] + 1),
                tier: tiers[i],
                calls: std::mem::take(&mut calls[i]),
            })
            .collect();
        Fleet { services }
    }

    /// Indices of the services that call `idx`.
    pub fn callers(&self, idx: usize) -> impl Iterator<Item = usize> + '_ {
        self.services
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.calls.contains(&idx))
            .map(|(i, _)| i)
    }

    /// Indices of the other services on `idx`'s host.
    pub fn neighbours(&self, idx: usize) -> impl Iterator<Item = usize> + '_ {
        let host = &self.services[idx].host;
        self.services
            .iter()
            .enumerate()
            .filter(move |(i, s)| *i != idx && &s.host == host)
            .map(|(i, _)| i)
    }

    /// The topology as a rules file (`[[service]] name / calls / runs_on`).
    pub fn topology_toml(&self) -> String {
        let mut out = String::from(
            "# Call topology of the simulated fleet (written by `harbinger simulate`).\n",
        );
        for s in &self.services {
            let calls: Vec<String> = s
                .calls
                .iter()
                .map(|&c| format!("{:?}", self.services[c].name))
                .collect();
            out.push_str(&format!(
                "\n[[service]]\nname = {:?}\ncalls = [{}]\nruns_on = {:?}\n",
                s.name,
                calls.join(", "),
                s.host
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_is_seeded_topological_and_connected() {
        for n in [3, 12, 40] {
            let f = Fleet::generate(n, 7);
            assert_eq!(f, Fleet::generate(n, 7));
            assert_eq!(f.services.len(), n);
            for (i, s) in f.services.iter().enumerate() {
                assert!(s.calls.iter().all(|&c| c > i), "calls go forward");
                if s.tier != Tier::Edge {
                    assert!(f.callers(i).count() > 0, "{} has no caller", s.name);
                }
            }
            let names: std::collections::HashSet<_> = f.services.iter().map(|s| &s.name).collect();
            assert_eq!(names.len(), n, "names are unique");
        }
        assert_ne!(Fleet::generate(12, 1), Fleet::generate(12, 2));
    }
}
