"""Local aiohttp servers that speak each vendor's documented API, for delivery tests."""
