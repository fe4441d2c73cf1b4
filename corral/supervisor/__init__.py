"""The master side of corral: states, policy, spawning, logs, control."""
