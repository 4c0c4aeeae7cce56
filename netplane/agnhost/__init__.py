"""The built-in test server, in the spirit of Kubernetes' e2e image `agnhost`:
`serve-hostname`, `netexec`, `connect` and `pause`, so that demos and tests need nothing
but netplane itself. Runs on asyncio (uvloop) and aiohttp."""
