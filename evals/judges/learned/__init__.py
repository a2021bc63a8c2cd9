"""Learned judges: small models over the embedded MiniLM encoder, trained on the benchmarks'
own human labels (see ``build`` for caching, ``recipes`` for what each learns and how it is
validated, ``backend`` for how the harness calls them)."""
