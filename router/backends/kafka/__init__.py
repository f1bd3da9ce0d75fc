"""The Kafka backend (`backend: kafka`, the optional `kafka` extra). Modules: `backend` (the
`Backend` facade and the log), `engine`, `outbox`, `table` (compacted topics tailed into
memory), `topics` (layout, creation, client settings). See docs/kafka.md.
"""
