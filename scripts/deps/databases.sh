# Sourced by scripts/test: the database servers and clients the database
# writers' tests start (PostgreSQLWriter, MariaDBWriter in sinks/src/db/):
# Debian's postgresql (initdb, postgres, psql) and mariadb-server
# (mariadb-install-db, mariadbd) with the mariadb client.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt_missing+=(postgresql)
fi
command -v psql >/dev/null 2>&1 || apt_missing+=(postgresql-client)
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || apt_missing+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || apt_missing+=(mariadb-client)
