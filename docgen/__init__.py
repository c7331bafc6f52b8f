"""Pages of the documentation site that are generated at build time (an MkDocs hook), never checked in.

``configuration.md`` from the structured configs, ``solver.md`` from solvers/README.md, and ``results/*.md`` from
experiments/results/: so the site cannot drift from the code, the solver's own README or the recorded results.
"""
