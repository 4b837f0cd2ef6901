"""loradock: keep, ship and serve LoRA adapters, one per domain, on one base model.

The repository keeps its folders at the top (`registry/`, `adapters/`, `serving/`,
`cli/`); they install as `loradock.registry`, `loradock.adapters`, `loradock.serving`
and `loradock.cli`, so site-packages gains only this one name.
"""

__version__ = "0.2.0"
