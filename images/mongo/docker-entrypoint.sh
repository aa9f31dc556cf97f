#!/bin/bash
# Entry point of the mongo stand-in: PostgreSQL on a socket inside the container, FerretDB on 27017.
set -Eeuo pipefail

file_env() {
  local var="$1" file="${1}_FILE"
  if [ -n "${!file:-}" ]; then export "$var"="$(< "${!file}")"; else export "$var"="${!var:-}"; fi
  unset "$file"
}

if [ "${1:-}" != 'mongod' ] && [ "${1:0:1}" != '-' ]; then exec "$@"; fi
dbpath=/data/db  # mongod's --dbpath, as the official image reads it
previous=""
for arg in "$@"; do
  if [ "$previous" = '--dbpath' ]; then dbpath=$arg; fi
  case "$arg" in --dbpath=*) dbpath=${arg#--dbpath=} ;; esac
  previous=$arg
done
if [ "$(id -u)" = '0' ]; then
  # only what is not the user's yet (an initialised image's data is left as it is)
  mkdir -p "$dbpath" && find "$dbpath" \! -user mongodb -exec chown mongodb:mongodb {} +
  exec setpriv --reuid=mongodb --regid=mongodb --init-groups "$BASH_SOURCE" "$@"
fi
file_env MONGO_INITDB_ROOT_USERNAME
file_env MONGO_INITDB_ROOT_PASSWORD
if { [ -n "$MONGO_INITDB_ROOT_USERNAME" ] && [ -z "$MONGO_INITDB_ROOT_PASSWORD" ]; } \
   || { [ -z "$MONGO_INITDB_ROOT_USERNAME" ] && [ -n "$MONGO_INITDB_ROOT_PASSWORD" ]; }; then
  echo >&2 'error: MONGO_INITDB_ROOT_USERNAME and MONGO_INITDB_ROOT_PASSWORD go together'
  exit 1
fi
pgdata=$dbpath/postgresql
if [ ! -s "$pgdata/PG_VERSION" ]; then
  initdb -D "$pgdata" -U postgres -E UTF8 --locale=C --auth=trust >/dev/null  # the database superuser's name
fi
pg_ctl -D "$pgdata" -o "-c listen_addresses='' -c unix_socket_directories=/tmp -c fsync=off" -w -l "$dbpath/postgresql.log" start >/dev/null
psql -h /tmp -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'ferretdb'" | grep -q 1 \
  || psql -h /tmp -U postgres -c 'CREATE DATABASE ferretdb' >/dev/null
args=(--handler=postgresql "--postgresql-url=postgres://postgres@/ferretdb?host=/tmp"
      --listen-addr=0.0.0.0:27017 "--state-dir=$dbpath" --debug-addr=- --telemetry=disable --log-level=warn)
if [ -n "$MONGO_INITDB_ROOT_USERNAME" ]; then
  args+=(--test-enable-new-auth --setup-database=admin "--setup-username=$MONGO_INITDB_ROOT_USERNAME"
         "--setup-password=$MONGO_INITDB_ROOT_PASSWORD")
fi
echo '{"msg":"Waiting for connections","attr":{"port":27017},"note":"FerretDB stand-in"}'
# FerretDB in the background: a stop (SIGTERM) ends it, then stops PostgreSQL cleanly (the data can
# then be committed and started again without recovery)
ferretdb "${args[@]}" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT
status=0
wait "$child" || status=$?
if kill -0 "$child" 2>/dev/null; then wait "$child" || status=$?; fi
pg_ctl -D "$pgdata" -m fast -w stop >/dev/null || true
exit "$status"
