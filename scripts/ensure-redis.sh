#!/usr/bin/env bash
# Make sure a Redis answers on 127.0.0.1:6379, starting a throwaway one if needed (idempotent).
# The test suite's Redis leg uses it; production uses compose.yaml's redis with AOF instead.
set -euo pipefail

HOST=127.0.0.1
PORT="${REDIS_PORT:-6379}"

answers() {
    if command -v redis-cli >/dev/null 2>&1; then
        [ "$(redis-cli -h "$HOST" -p "$PORT" ping 2>/dev/null || true)" = "PONG" ]
    else
        # No redis-cli: speak RESP over bash's /dev/tcp.
        (
            exec 3<>"/dev/tcp/$HOST/$PORT" || exit 1
            printf 'PING\r\n' >&3
            IFS= read -r -t 2 reply <&3 || exit 1
            [ "${reply%$'\r'}" = "+PONG" ]
        ) 2>/dev/null
    fi
}

if answers; then
    echo "ensure-redis: Redis answers on $HOST:$PORT"
    exit 0
fi

if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "ensure-redis: redis-server is not installed and we are not root;" >&2
        echo "ensure-redis: install it (apt-get install redis-server) or set REDIS_URL" >&2
        exit 1
    fi
    echo "ensure-redis: installing redis-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq redis-server >/dev/null
fi

DATA_DIR="$(mktemp -d "${TMPDIR:-/tmp}/redis-test.XXXXXX")"
echo "ensure-redis: starting redis-server on $HOST:$PORT (no persistence, dir $DATA_DIR)"
redis-server --daemonize yes --bind "$HOST" --port "$PORT" --save "" --appendonly no \
    --dir "$DATA_DIR" --logfile "$DATA_DIR/redis.log"

for _ in $(seq 1 100); do
    if answers; then
        echo "ensure-redis: Redis answers on $HOST:$PORT"
        exit 0
    fi
    sleep 0.1
done
echo "ensure-redis: redis-server did not answer on $HOST:$PORT within 10 s; see $DATA_DIR/redis.log" >&2
exit 1
