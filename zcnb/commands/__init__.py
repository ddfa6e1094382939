"""Sub-commands of ``zcnb``: one module per area, each with ``register(subparsers)``."""
