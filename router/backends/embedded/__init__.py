"""The embedded backend: one SQLite database (WAL) holding the log, the engine's state, the
outbox, dead letters, delivery records and the read views. The default, so one process works
out of the box. Modules: `backend` (the `Backend` facade and the log), `engine`, `outbox`,
`retention`, `sqlite` (the database), `metrics` (its storage metrics).
"""
