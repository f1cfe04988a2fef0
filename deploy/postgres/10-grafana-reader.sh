#!/bin/sh
# Runs once, when the PostgreSQL volume is first initialised (docker-entrypoint-initdb.d):
# creates grafana_reader, the login of Grafana's PostgreSQL datasource, with no access to
# any table yet. The tables do not exist yet (`driftwarden db upgrade`, service migrate,
# creates them); deploy/grafana-reader.sql (service grafana-grants) then lets the role read
# only what the dashboards query, after every upgrade.
set -eu
: "${GRAFANA_DB_PASSWORD:?set GRAFANA_DB_PASSWORD}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v reader="${GRAFANA_DB_USER:-grafana_reader}" \
     -v reader_password="$GRAFANA_DB_PASSWORD" <<'SQL'
CREATE ROLE :"reader" LOGIN PASSWORD :'reader_password';
GRANT CONNECT ON DATABASE :"DBNAME" TO :"reader";
SQL
