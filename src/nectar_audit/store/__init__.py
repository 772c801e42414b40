"""The history store: every run kept in an SQL database, SQLite for one user (no set-up) or PostgreSQL for a
team (schema by ``store init``, insert-only writer role, read-only reader role, a local outbox when it is
down), and the fleet view read from it."""
