"""What the tests share: item and command factories (``items``), projecting events (``projections``),
the hostile-input harness and strategies (``ingress``, ``hostile``), and the repository's paths."""
