"""Kafka end-to-end benchmark of Harbinger (driven by scripts/bench_kafka.sh).

Two phases against a broker on this machine:

1. Throughput. A simulator file is loaded into a topic beforehand (`harbinger produce`, several
   points per message); the engine then starts and reads it all. Figure: points divided by the
   wall time from starting the engine to the last alert it produced (the file ends with one point
   per service a day later, so every window closes and every alert resolves: the last alert marks
   the end of the work).
2. Latency and lag. The same kind of data is produced live at a fixed rate while the engine runs.
   Latency of an alert = the alert message's timestamp minus the moment the first metric message
   whose event time reaches the alert's window end plus the allowed lateness was produced: the
   earliest moment the engine could know the window was complete, so the window length and the
   lateness are excluded. Lag = messages produced but not yet committed by the engine's consumer
   group (committed at every checkpoint), sampled every 0.5 s.

Both phases produce with `--compression` (default lz4, as production metric pipelines do: JSON
metrics compress about fivefold, and the test broker moves compressed batches unopened; without
compression the broker's bytes per second bound the whole run).

Usage: kafka_bench.py --brokers B --harbinger BIN --sim-file metrics.jsonl --out DIR
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import defaultdict

from confluent_kafka import Consumer, Producer, TopicPartition


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100.0 * (len(values) - 1)))))
    return values[k]


def read_lines(path):
    with open(path) as f:
        return [line for line in f if line.strip()]


def with_end_markers(lines, out_path):
    """Appends one point per service a day after the data (closes every window)."""
    last = 0
    services = set()
    for line in lines:
        v = json.loads(line)
        last = max(last, v["timestamp"])
        services.add(v["labels"].get("service", ""))
    end = last + 86_400_000
    with open(out_path, "w") as f:
        f.writelines(lines)
        for s in sorted(services):
            f.write(json.dumps({"name": "end_marker", "labels": {"service": s},
                                "timestamp": end, "value": 0}) + "\n")
    return len(lines) + len(services)


def messages(lines, per_message, batch_by, partitions=3):
    """(event time, key, payload) in file order: points of one timestamp and one service (or one
    partition: services map to partitions by a fixed hash) together."""
    out = []
    pending = defaultdict(list)
    current = None
    for line in lines:
        v = json.loads(line)
        ts = v["timestamp"]
        if current is not None and ts != current:
            for key, group in pending.items():
                for i in range(0, len(group), per_message):
                    out.append((current, key, "[" + ",".join(group[i:i + per_message]) + "]"))
            pending.clear()
        current = ts
        service = v["labels"].get("service", "")
        if batch_by == "partition":
            service = str(zlib.crc32(service.encode()) % partitions)
        pending[service].append(line.strip())
    for key, group in pending.items():
        for i in range(0, len(group), per_message):
            out.append((current, key, "[" + ",".join(group[i:i + per_message]) + "]"))
    return out


def config(path, brokers, topic, alerts, dead, group, checkpoints):
    extra = ""
    if checkpoints:
        extra = f'checkpoint_dir = "{checkpoints}"\ncheckpoint_interval_secs = 60\n'
    with open(path, "w") as f:
        f.write(f"""[engine]
allowed_lateness_secs = 30
workers = 2
{extra}
[[sources]]
type = "kafka"
brokers = "{brokers}"
topic = "{topic}"
group_id = "{group}"
idle_partition_timeout_secs = 2

[[windows]]
name = "1m"
size_secs = 60

[[detectors]]
type = "robust_z"
window = "1m"
feature = "auto"

[[sinks]]
type = "kafka"
brokers = "{brokers}"
alerts_topic = "{alerts}"
dead_letters_topic = "{dead}"
""")


def read_alerts(brokers, topic, quiet_secs, deadline):
    """Every alert message as (timestamp ms, record), until `quiet_secs` without new ones."""
    c = Consumer({"bootstrap.servers": brokers, "group.id": f"reader-{time.time_ns()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    # Assigned, not subscribed: the test broker's group rebalancing is unreliable.
    while time.time() < deadline:
        topics = c.list_topics(topic, timeout=5).topics
        if topic in topics and topics[topic].partitions:
            break
        time.sleep(0.5)
    c.assign([TopicPartition(topic, p, 0) for p in c.list_topics(topic).topics[topic].partitions])
    out = []
    last = time.time()
    while time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            if out and time.time() - last > quiet_secs:
                break
            continue
        last = time.time()
        out.append((m.timestamp()[1], json.loads(m.value())))
    c.close()
    return out


def engine(binary, cfg, log):
    return subprocess.Popen([binary, "run", "--config", cfg], stdout=subprocess.DEVNULL,
                            stderr=open(log, "w"), env={**os.environ, "RUST_LOG": "warn"})


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def throughput(args, tag):
    lines = read_lines(args.sim_file)
    path = os.path.join(args.out, "backlog.jsonl")
    points = with_end_markers(lines, path)
    topic = f"bench-{tag}-backlog"
    subprocess.run([args.harbinger, "produce", "--brokers", args.brokers, "--topic", topic,
                    "--input", path, "--per-message", str(args.per_message),
                    "--batch-by", args.batch_by,
                    "--property", f"compression.type={args.compression}"], check=True)
    cfg = os.path.join(args.out, "backlog.toml")
    alerts = f"bench-{tag}-alerts-1"
    config(cfg, args.brokers, topic, alerts, f"bench-{tag}-dead-1", f"bench-{tag}-g1", None)
    started = time.time()
    proc = engine(args.harbinger, cfg, os.path.join(args.out, "backlog.log"))
    got = read_alerts(args.brokers, alerts, quiet_secs=10, deadline=started + 900)
    stop(proc)
    if not got:
        sys.exit("no alert came out of the throughput run")
    wall = max(ts for ts, _ in got) / 1000.0 - started
    return {"points": points, "alert_events": len(got), "wall_secs": round(wall, 2),
            "points_per_sec": round(points / wall)}


def live(args, tag):
    lines = read_lines(args.sim_file)
    msgs = messages(lines, args.per_message, args.batch_by)
    per_ts = defaultdict(int)
    for ts, _, payload in msgs:
        per_ts[ts] += payload.count('"timestamp"')
    stamps = sorted(per_ts)
    mean_points = sum(per_ts.values()) / len(stamps)
    # Wall seconds per event timestamp so that points flow at --rate points/s.
    step = mean_points / args.rate
    topic = f"bench-{tag}-live"
    alerts = f"bench-{tag}-alerts-2"
    group = f"bench-{tag}-g2"
    subprocess.run([args.harbinger, "produce", "--brokers", args.brokers, "--topic", topic,
                    "--input", "/dev/null"], check=True)
    checkpoints = tempfile.mkdtemp(dir=args.out)
    cfg = os.path.join(args.out, "live.toml")
    config(cfg, args.brokers, topic, alerts, f"bench-{tag}-dead-2", group, checkpoints)
    proc = engine(args.harbinger, cfg, os.path.join(args.out, "live.log"))
    time.sleep(3)
    producer = Producer({"bootstrap.servers": args.brokers, "linger.ms": 5,
                         "message.timeout.ms": 0, "compression.type": args.compression})
    produced_at = {}
    produced = defaultdict(int)
    lag_samples = []
    done = threading.Event()

    def on_delivery(err, msg):
        if err is None:
            produced[msg.partition()] = max(produced[msg.partition()], msg.offset() + 1)

    def sample_lag():
        c = Consumer({"bootstrap.servers": args.brokers, "group.id": group,
                      "enable.auto.commit": False})
        while not done.is_set():
            parts = [TopicPartition(topic, p) for p in list(produced)]
            if parts:
                committed = c.committed(parts, timeout=5)
                lag = sum(max(0, produced[tp.partition] - max(tp.offset, 0)) for tp in committed)
                lag_samples.append(lag)
            time.sleep(0.5)
        c.close()

    sampler = threading.Thread(target=sample_lag)
    sampler.start()
    start = time.time()
    i = 0
    for k, ts in enumerate(stamps):
        due = start + k * step
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        produced_at[ts] = time.time()
        while i < len(msgs) and msgs[i][0] == ts:
            _, key, payload = msgs[i]
            while True:
                try:
                    extra = {"partition": int(key)} if args.batch_by == "partition" else {}
                    producer.produce(topic, payload.encode(), key.encode(),
                                     on_delivery=on_delivery, **extra)
                    break
                except BufferError:
                    producer.poll(0.01)
            i += 1
        producer.poll(0)
    producer.flush()
    produce_secs = time.time() - start
    points = sum(per_ts.values())
    got = read_alerts(args.brokers, alerts, quiet_secs=15, deadline=time.time() + 300)
    done.set()
    sampler.join()
    stop(proc)
    # Latency: from the production of the first timestamp reaching window end + lateness.
    lateness_ms = 30_000
    latencies = []
    for alert_ts, record in got:
        trigger = record["event_time"] + lateness_ms
        # First produced timestamp at or after the trigger (binary search over sorted stamps).
        lo, hi = 0, len(stamps)
        while lo < hi:
            mid = (lo + hi) // 2
            if stamps[mid] < trigger:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(stamps):
            latencies.append(alert_ts / 1000.0 - produced_at[stamps[lo]])
    return {
        "rate_target_points_per_sec": args.rate,
        "rate_achieved_points_per_sec": round(points / produce_secs),
        "alert_events": len(got),
        "latency_ms_p50": round(1000 * percentile(latencies, 50), 1),
        "latency_ms_p99": round(1000 * percentile(latencies, 99), 1),
        "lag_messages_p50": percentile(lag_samples, 50),
        "lag_messages_p99": percentile(lag_samples, 99),
        "lag_samples": len(lag_samples),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--harbinger", required=True)
    ap.add_argument("--sim-file", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-message", type=int, default=100)
    ap.add_argument("--rate", type=float, default=100_000, help="live phase, points/s")
    ap.add_argument("--batch-by", choices=["entity", "partition"], default="entity",
                    help="what shares a message (see harbinger produce --batch-by)")
    ap.add_argument("--compression", choices=["none", "lz4", "snappy", "gzip"], default="lz4",
                    help="producer compression (record batches stay compressed in the broker; "
                         "the consumer decompresses)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    tag = str(time.time_ns())
    result = {"batch_by": args.batch_by, "per_message": args.per_message,
              "compression": args.compression, "throughput": throughput(args, tag), "live": live(args, tag)}
    print(json.dumps(result, indent=2))
    with open(os.path.join(args.out, "kafka_bench.json"), "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
