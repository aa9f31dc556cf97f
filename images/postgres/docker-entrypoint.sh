#!/bin/bash
# Entry point of the postgres stand-in image: the official image's contract, in short.
set -Eeuo pipefail

file_env() {  # VAR or VAR_FILE
  local var="$1" file="${1}_FILE" def="${2:-}"
  if [ -n "${!file:-}" ]; then export "$var"="$(< "${!file}")"; else export "$var"="${!var:-$def}"; fi
  unset "$file"
}

if [ "${1:-}" = 'postgres' ] || [ "${1:0:1}" = '-' ]; then
  [ "${1:0:1}" = '-' ] && set -- postgres "$@"
  if [ "$(id -u)" = '0' ]; then
    # as the official image: only what is not the user's yet (an initialised image's data is left as it is)
    mkdir -p "$PGDATA" && find "$PGDATA" \! -user postgres -exec chown postgres:postgres {} + && chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
  fi
  file_env POSTGRES_PASSWORD
  file_env POSTGRES_USER postgres
  file_env POSTGRES_DB "$POSTGRES_USER"
  file_env POSTGRES_INITDB_ARGS
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "$POSTGRES_PASSWORD" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != 'trust' ]; then
      echo >&2 'Error: Database is uninitialized and superuser password is not specified.'
      echo >&2 '       You must specify POSTGRES_PASSWORD to a non-empty value for the superuser.'
      exit 1
    fi
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") $POSTGRES_INITDB_ARGS -D "$PGDATA"
    printf '\nhost all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >> "$PGDATA/pg_hba.conf"
    # a temporary server on the socket only, for the init scripts
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" -w start
    export PGPASSWORD="$POSTGRES_PASSWORD"
    psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --host /var/run/postgresql)
    if [ "$POSTGRES_DB" != 'postgres' ]; then
      "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db" ;'
    fi
    for f in /docker-entrypoint-initdb.d/*; do
      case "$f" in
        *.sh) if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
        *.sql) "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
        *.sql.gz) gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" ;;
        *) ;;
      esac
    done
    unset PGPASSWORD
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo 'PostgreSQL init process complete; ready for start up.'
  else
    echo 'PostgreSQL Database directory appears to contain a database; Skipping initialization'
  fi
  exec "$@" -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql
fi
exec "$@"
