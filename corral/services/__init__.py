"""Built-in services: internet (TCP, UDP, unix, SSL), timer, web (the `web` plugin)."""
