"""The project's static site: the README and docs/, the four notebooks executed, and the lab.

`build` writes it (MkDocs, Material for MkDocs, mkdocs-jupyter: the `site` extra); `cli` is the
command, which loads none of them until it runs.
"""
