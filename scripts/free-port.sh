#!/usr/bin/env bash
# Sourced by the scripts that start throwaway test servers (clickhouse.sh, s3.sh).

# Below the kernel's ephemeral range (32768 and up here): a port girok or a client takes with
# port 0 or an outgoing connection can then never be the one a test server comes back to after a
# test stopped it.
free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 12000))
    if ! (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}
