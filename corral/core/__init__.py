"""The supervision core: pure data and decisions (no asyncio, no os)."""
