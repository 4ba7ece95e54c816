# Sourced by scripts that need a Kafka-protocol broker: installs tansu 0.6.0 if missing (about ten
# minutes, once) and starts it on a free loopback port with in-memory storage.
#
# After `start_broker`: BROKER_ADDR (host:port) and BROKER_PID are set, and the broker is stopped
# (and resumed first, should a test have frozen it) when the calling script exits.

TANSU_VERSION=0.6.0

start_broker() {
  if ! command -v tansu >/dev/null || ! tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    echo "Installing tansu $TANSU_VERSION (takes about ten minutes, once)..."
    cargo install tansu --version "$TANSU_VERSION" --features dynostore --locked
  fi
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  BROKER_LOG=$(mktemp)
  tansu broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ >"$BROKER_LOG" 2>&1 &
  BROKER_PID=$!
  BROKER_ADDR="127.0.0.1:$port"
  trap stop_broker EXIT
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
  done
  if ! kill -0 "$BROKER_PID" 2>/dev/null; then
    echo "The broker did not start:"; cat "$BROKER_LOG"; exit 1
  fi
  echo "tansu listening on $BROKER_ADDR (pid $BROKER_PID)"
}

stop_broker() {
  kill -CONT "$BROKER_PID" 2>/dev/null || true
  kill "$BROKER_PID" 2>/dev/null || true
  wait "$BROKER_PID" 2>/dev/null || true
  rm -f "$BROKER_LOG"
}
