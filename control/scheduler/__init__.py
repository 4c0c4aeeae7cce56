"""The scheduler: binds pending pods to nodes (`netplane scheduler`).

Pure parts: `quantity`, `affinity`, `podinfo`, `nodeinfo`, `framework`, `plugins`,
`queue`, `cache`; the shell that talks to the apiserver: `scheduler`, `metrics`."""
