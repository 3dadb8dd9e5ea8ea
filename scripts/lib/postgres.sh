# Sourced by scripts/cluster and benches/ladder_workers.sh: runs a
# PostgreSQL cluster of Debian's package over a Unix socket.
#
#   postgres_up DIR
#
# initialises DIR/data on first use, starts the server with its socket in
# DIR (PostgreSQL refuses to run as root: as root it runs as the postgres
# user), creates the database "streamforge" and sets POSTGRES_URL to its
# StreamForge database URL. postgres_down DIR stops it.

pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

postgres_up() {
  local dir=$1
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  if [ ! -d "$dir/data" ]; then
    as_postgres "$pg_bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C >/dev/null
  fi
  as_postgres "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-k $dir -c listen_addresses=''" start >/dev/null
  if ! "$pg_bin/psql" -h "$dir" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='streamforge'" postgres | grep -q 1; then
    "$pg_bin/psql" -h "$dir" -U postgres -q -c 'CREATE DATABASE streamforge' postgres
  fi
  POSTGRES_URL="postgres://postgres@localhost/streamforge?host=$dir"
}

postgres_down() {
  local dir=$1
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_postgres "$pg_bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
  fi
}
