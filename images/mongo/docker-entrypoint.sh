#!/bin/bash
# Entry point of the mongo stand-in: PostgreSQL on a socket inside the container, FerretDB on 27017.
set -Eeuo pipefail

file_env() {
  local var="$1" file="${1}_FILE"
  if [ -n "${!file:-}" ]; then export "$var"="$(< "${!file}")"; else export "$var"="${!var:-}"; fi
  unset "$file"
}

if [ "${1:-}" != 'mongod' ] && [ "${1:0:1}" != '-' ]; then exec "$@"; fi
if [ "$(id -u)" = '0' ]; then
  chown -R mongodb:mongodb /data/db
  exec setpriv --reuid=mongodb --regid=mongodb --init-groups "$BASH_SOURCE" "$@"
fi
file_env MONGO_INITDB_ROOT_USERNAME
file_env MONGO_INITDB_ROOT_PASSWORD
if { [ -n "$MONGO_INITDB_ROOT_USERNAME" ] && [ -z "$MONGO_INITDB_ROOT_PASSWORD" ]; } \
   || { [ -z "$MONGO_INITDB_ROOT_USERNAME" ] && [ -n "$MONGO_INITDB_ROOT_PASSWORD" ]; }; then
  echo >&2 'error: MONGO_INITDB_ROOT_USERNAME and MONGO_INITDB_ROOT_PASSWORD go together'
  exit 1
fi
pgdata=/data/db/postgresql
if [ ! -s "$pgdata/PG_VERSION" ]; then
  initdb -D "$pgdata" -U postgres -E UTF8 --locale=C --auth=trust >/dev/null  # the database superuser's name
fi
pg_ctl -D "$pgdata" -o "-c listen_addresses='' -c unix_socket_directories=/tmp -c fsync=off" -w -l /data/db/postgresql.log start >/dev/null
psql -h /tmp -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'ferretdb'" | grep -q 1 \
  || psql -h /tmp -U postgres -c 'CREATE DATABASE ferretdb' >/dev/null
args=(--handler=postgresql "--postgresql-url=postgres://postgres@/ferretdb?host=/tmp"
      --listen-addr=0.0.0.0:27017 --state-dir=/data/db --debug-addr=- --telemetry=disable --log-level=warn)
if [ -n "$MONGO_INITDB_ROOT_USERNAME" ]; then
  args+=(--test-enable-new-auth --setup-database=admin "--setup-username=$MONGO_INITDB_ROOT_USERNAME"
         "--setup-password=$MONGO_INITDB_ROOT_PASSWORD")
fi
echo '{"msg":"Waiting for connections","attr":{"port":27017},"note":"FerretDB stand-in"}'
exec ferretdb "${args[@]}"
