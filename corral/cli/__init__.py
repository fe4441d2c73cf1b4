"""The `corral` command: see main.py for the layout (one module per job).

Kept free of imports on purpose: the client path must start fast, so it
never pulls in the master side (asyncio, multiprocess,
corral.supervisor, corral.config). Use ``corral.cli.main.main``.
"""
