#!/usr/bin/env bash
# A throwaway loopback-only ClickHouse server for tests and benches (Debian's
# clickhouse-server 18.16; see ../shared/notes/clickhouse.md).
#
#   scripts/clickhouse.sh install           install clickhouse-server and -client if missing
#   scripts/clickhouse.sh start DIR [PORT]  start one in DIR (HTTP on PORT, default: a free
#                                           port); prints its URL, e.g. http://127.0.0.1:18123
#   scripts/clickhouse.sh stop DIR          stop it (its data stays in DIR; start resumes it)
set -euo pipefail

server=/usr/sbin/clickhouse-server

. "$(dirname "$0")/free-port.sh"

case "${1:-}" in
install)
  if ! command -v curl >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >&2
  fi
  if [ ! -x "$server" ]; then
    echo "== installing clickhouse-server (Debian's package)" >&2
    apt-get update -qq
    # The package's own service start is refused by policy-rc.d in containers: harmless.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client >&2
  fi
  ;;
start)
  dir=$(realpath -m "${2:?usage: start DIR [PORT]}")
  port=${3:-}
  if [ -z "$port" ] && [ -f "$dir/http_port" ]; then port=$(cat "$dir/http_port"); fi
  if [ -z "$port" ]; then port=$(free_port); fi
  tcp_port=$(free_port)
  mkdir -p "$dir"/{data,tmp,user_files,format_schemas,log}
  echo "$port" >"$dir/http_port"
  cat >"$dir/config.xml" <<XML
<yandex>
  <logger>
    <level>warning</level>
    <log>$dir/log/clickhouse.log</log>
    <errorlog>$dir/log/clickhouse.err.log</errorlog>
    <size>10M</size>
    <count>1</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$port</http_port>
  <tcp_port>$tcp_port</tcp_port>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <user_files_path>$dir/user_files/</user_files_path>
  <format_schema_path>$dir/format_schemas/</format_schema_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
XML
  cat >"$dir/users.xml" <<XML
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
  </interval></default></quotas>
</yandex>
XML
  "$server" --config-file="$dir/config.xml" --pid-file="$dir/clickhouse.pid" --daemon
  # Usually up in a fraction of a second; a busy machine can take much longer.
  for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$port/ping" >/dev/null 2>&1; then
      echo "http://127.0.0.1:$port"
      exit 0
    fi
    sleep 0.1
  done
  echo "clickhouse did not answer on port $port within 60 s; its error log:" >&2
  tail -n 30 "$dir/log/clickhouse.err.log" >&2 2>/dev/null || true
  exit 1
  ;;
stop)
  dir=$(realpath -m "${2:?usage: stop DIR}")
  if [ -f "$dir/clickhouse.pid" ]; then
    pid=$(cat "$dir/clickhouse.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$dir/clickhouse.pid"
  fi
  ;;
*)
  sed -n '2,9p' "$0"
  exit 2
  ;;
esac
