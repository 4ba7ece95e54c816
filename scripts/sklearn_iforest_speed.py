#!/usr/bin/env python3
"""scikit-learn IsolationForest scoring speed, for comparison with `cargo bench --bench
isolation_forest` (isolation_forest/score/standard).

Builds the same rows as benches/isolation_forest.rs (splitmix64 draws mapped to bell-shaped
features, 1% far rows; 8,640 x 19 fitted, 4,320 scored), fits scikit-learn's IsolationForest
with the bench's parameters (100 trees, 256 rows per tree) on one core, and prints rows scored
per second (best and median of REPEATS runs of score_samples). With --asd DIR it also times the
ASD machine omi-1 (train/test split) from that folder.

Usage: OMP_NUM_THREADS=1 python3 scripts/sklearn_iforest_speed.py [--asd ../shared/data/asd]
Needs numpy and scikit-learn.
"""
import argparse
import statistics
import time

import numpy as np
from sklearn.ensemble import IsolationForest

N_FEATURES = 19
MASK = (1 << 64) - 1
REPEATS = 20


def rows(n, seed):
    """The bench's rows: see `rows` in benches/isolation_forest.rs."""
    state = seed

    def uniform():
        nonlocal state
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return ((z ^ (z >> 31)) >> 40) / float(1 << 24)

    out = np.empty((n, N_FEATURES), dtype=np.float32)
    for i in range(n):
        far = uniform() < 0.01
        for j in range(N_FEATURES):
            bell = uniform() + uniform() + uniform() - 1.5
            spread = 1.0 + j
            value = 10.0 * j + spread * bell
            out[i, j] = value + 8.0 * spread if far else value
    return out


def time_scoring(name, train, test):
    forest = IsolationForest(n_estimators=100, max_samples=256, random_state=0, n_jobs=1)
    forest.fit(train)
    forest.score_samples(test)  # warm-up
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        forest.score_samples(test)
        times.append(time.perf_counter() - start)
    best, median = min(times), statistics.median(times)
    print(
        f"{name}: {len(test)} rows; best {len(test) / best:,.0f} rows/s, "
        f"median {len(test) / median:,.0f} rows/s"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asd", help="ASD folder (with train/ and test/)")
    args = parser.parse_args()
    time_scoring("bench rows (8,640 fitted, 4,320 scored)", rows(8_640, 1), rows(4_320, 2))
    if args.asd:
        train = np.loadtxt(f"{args.asd}/train/omi-1.txt", delimiter=",")
        test = np.loadtxt(f"{args.asd}/test/omi-1.txt", delimiter=",")
        time_scoring("ASD omi-1", train, test)


if __name__ == "__main__":
    main()
