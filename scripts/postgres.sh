# A throw-away PostgreSQL server for the test suite and the benchmarks; sourced, not run.
#
# start_postgres: initdb + pg_ctl start of the newest /usr/lib/postgresql/*/bin as the `postgres`
# user, trust authentication, 127.0.0.1 on a free port; sets POSTGRES_URL (postgres://postgres@...)
# and returns 0, or returns 1 (POSTGRES_URL empty) when there is no server binary or we are not
# root. Arguments are server settings (`shared_buffers=1GB`), each passed as `-c`. stop_postgres: stops it and removes its directory (safe to call when none was started).

POSTGRES_URL=""
_pg_dir=""
_pg_bin=""

start_postgres() {
  _pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$_pg_bin" ] && [ "$(id -u)" -eq 0 ] || return 1
  _pg_dir=$(mktemp -d /tmp/portcullis-pg.XXXXXX)
  chmod 755 "$_pg_dir"
  chown postgres:postgres "$_pg_dir"
  local port setting settings=""
  for setting in "$@"; do settings="$settings -c $setting"; done
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  runuser -u postgres -- "$_pg_bin/initdb" -A trust -U postgres -D "$_pg_dir/data" >/dev/null
  runuser -u postgres -- "$_pg_bin/pg_ctl" -D "$_pg_dir/data" -l "$_pg_dir/postgres.log" \
    -o "-p $port -k $_pg_dir -c listen_addresses=127.0.0.1$settings" -w start >/dev/null
  POSTGRES_URL="postgres://postgres@127.0.0.1:$port"
}

stop_postgres() {
  [ -n "$_pg_dir" ] || return 0
  runuser -u postgres -- "$_pg_bin/pg_ctl" -D "$_pg_dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$_pg_dir"
  _pg_dir=""
}
