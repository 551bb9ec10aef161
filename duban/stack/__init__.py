"""The embedded stack (a Temporal dev server and a Tansu broker), its binaries, the service probes."""
