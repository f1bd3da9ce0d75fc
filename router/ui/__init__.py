"""The web console under /ui/: server-rendered pages over the same read views and command path
as the REST API (see docs/console.md)."""
