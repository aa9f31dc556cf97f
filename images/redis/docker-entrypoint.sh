#!/bin/sh
# Entry point of the redis stand-in: the official image's argument rules.  The official server is
# compiled with protected mode off as its *default*; here that default comes first (a generated
# config that includes the user's), so the user's own `protected-mode yes` or `--protected-mode yes` wins.
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi
if [ "$1" = 'redis-server' ]; then
  shift
  defaults=$(mktemp /tmp/redis-defaults.XXXXXX)
  printf 'protected-mode no\n' > "$defaults"
  if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then  # a config file comes first: included after the default
    printf 'include %s\n' "$1" >> "$defaults"
    shift
  fi
  chmod 0644 "$defaults"
  set -- redis-server "$defaults" "$@"
  if [ "$(id -u)" = '0' ]; then
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
