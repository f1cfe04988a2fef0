-- What Grafana's PostgreSQL datasource (role grafana_reader) may read: exactly the tables and
-- columns the dashboards in grafana/dashboards/ query, and nothing else. dead_letters (raw
-- event bytes), the label join, profiles, window summaries and alert bodies stay unreadable.
--
-- Run it as the owner of driftwarden's tables after every `driftwarden db upgrade` (compose
-- runs it in service grafana-grants, after migrate); it is idempotent:
--   psql -v ON_ERROR_STOP=1 -v reader=grafana_reader -f deploy/grafana-reader.sql
-- It acts on the schema first in the search path (public unless you set one).
\if :{?reader}
\else
  \set reader grafana_reader
\endif
SELECT current_schema() AS schema \gset

-- Forget what earlier setups granted: before this file, every table (dead_letters too)
-- was readable through default privileges.
ALTER DEFAULT PRIVILEGES IN SCHEMA :"schema" REVOKE ALL ON TABLES FROM :"reader";
REVOKE ALL ON ALL TABLES IN SCHEMA :"schema" FROM :"reader";

GRANT USAGE ON SCHEMA :"schema" TO :"reader";
-- Model dashboard, "History" row: performance, drift and windows per window.
GRANT SELECT ON results TO :"reader";
-- Model dashboard, annotation "Alert incidents": when each alert group fired and resolved
-- (not the notifications' bodies, channels or delivery errors).
GRANT SELECT (model, group_key, status, severity, rules, created_at) ON alert_outbox TO :"reader";
